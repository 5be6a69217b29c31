"""What the monitoring tests check (monitoring/), and how they run promtool and amtool.

The binaries are the deployed ones, Debian bookworm's Prometheus 2.42 and Alertmanager 0.25:
either given by path (NMPI_PROMTOOL, NMPI_AMTOOL), or run from the project's Prometheus image
(NMPI_IMAGE_PROMETHEUS:NMPI_IMAGE_TAG of images/images.env, which carries both), with the
repository's monitoring/ mounted read-only at /monitoring. A test that needs one and has
neither fails: rule and route tests that did not run must not pass as skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO, read_images_env

MONITORING = REPO / "monitoring"
RULES = MONITORING / "prometheus" / "rules"
RULE_TESTS = MONITORING / "prometheus" / "tests"
ROUTES = MONITORING / "alertmanager" / "routes.yml"
RUNBOOK = MONITORING.parent / "docs" / "runbooks" / "alerts.md"
# The receivers routes.yml names; the deployment defines them from its variables.
RECEIVERS = ("page", "ticket", "heartbeat", "blackhole")


def rule_files() -> list[Path]:
    return sorted(RULES.glob("*.yml"))


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*.yml"))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alerting_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule of monitoring/prometheus/rules, by alert name."""
    alerts: dict[str, dict[str, Any]] = {}
    for path in rule_files():
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["alert"] not in alerts, f"{rule['alert']} defined twice"
                    alerts[rule["alert"]] = rule
    return alerts


@dataclass(frozen=True)
class Tool:
    """A command line tool, run with monitoring/ as its working directory: paths given to it
    are relative to monitoring/, or absolute under the session's scratch directory."""

    name: str
    argv: tuple[str, ...]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args],
            cwd=MONITORING,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _image() -> str:
    env = read_images_env()
    name = env.get("NMPI_IMAGE_PROMETHEUS", "nmpi/prometheus")
    return f"{name}:{env['NMPI_IMAGE_TAG']}"


def _image_present(image: str) -> bool:
    if shutil.which("docker") is None:
        return False
    inspect = subprocess.run(
        ["docker", "image", "inspect", image],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return inspect.returncode == 0


def tool(name: str, variable: str, scratch: Path) -> Tool:
    """`name` from the path in the environment variable `variable`, else from the image."""
    given = os.environ.get(variable)
    if given:
        path = Path(given)
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"{variable}={given}: not an executable file")
        return Tool(name, (str(path),))
    image = _image()
    if not _image_present(image):
        pytest.fail(
            f"no {name} to run: set {variable} to the path of a {name} binary (Debian bookworm's, "
            f"e.g. from `apt-get download` and `dpkg-deb -x`), or build the image {image} "
            "(make images), which carries it"
        )
    # The image's own user could not read pytest's private scratch directory: run as ours.
    return Tool(
        name,
        (
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            f"{os.getuid()}:{os.getgid()}",
            "-v",
            f"{MONITORING}:/monitoring:ro",
            "-v",
            f"{scratch}:{scratch}",
            "-w",
            "/monitoring",
            image,
            name,
        ),
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def relative(path: Path) -> str:
    """`path` as the tools see it: relative to monitoring/ (their working directory)."""
    return str(path.relative_to(MONITORING))


def alert_labels(rule: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
    """The labels of an alert of `rule` that carries `extra` from its expression."""
    return {"alertname": rule["alert"], **rule.get("labels", {}), **extra}


def alertmanager_config(directory: Path) -> Path:
    """routes.yml made a whole configuration: the four receivers, each a webhook that goes
    nowhere (the deployment defines the real ones)."""
    config = load_yaml(ROUTES)
    config["receivers"] = [
        {"name": name, "webhook_configs": [{"url": "http://127.0.0.1:9/"}]} for name in RECEIVERS
    ]
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
