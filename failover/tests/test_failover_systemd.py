"""The systemd unit: restarts on failure, runs without privileges, writes only its journal.

The unit's one source is the failover_daemon role's template; these tests render it with
Ansible itself (the role's defaults and vars, as a deployment would) and check the result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from failover_testkit import REPO

ROLE = REPO / "roles" / "failover_daemon"
TEMPLATE = ROLE / "templates" / "nmpi-failover.service.j2"
BIN = "/opt/nmpi-failover/venv/bin/nmpi-failover"

# Inventory variables of each rendering, on top of the role's defaults.
VARIANTS: dict[str, dict[str, object]] = {
    "defaults": {},
    "dry-run": {
        "failover_daemon_dry_run": True,
        "failover_daemon_log_level": "debug",
        "failover_daemon_journal": "/srv/nmpi-failover/journal.jsonl",
        "failover_daemon_clouds": {"witness": {"auth": {}}},
    },
}


def render_playbook(out: Path) -> str:
    """One task per variant; task vars outrank the role files loaded as vars_files."""
    tasks = [
        {
            "name": f"Render the unit: {name}",
            "ansible.builtin.template": {
                "src": str(TEMPLATE),
                "dest": str(out / f"{name}.service"),
                "mode": "0644",
            },
            "vars": variables,
        }
        for name, variables in VARIANTS.items()
    ]
    play = {
        "hosts": "witness-1",
        "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": tasks,
    }
    return json.dumps([play], indent=2)


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each variant rendered by ansible-playbook from the role's template."""
    out = tmp_path_factory.mktemp("units")
    play = out / "render.yml"
    play.write_text(render_playbook(out))
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [
            str(bindir / "ansible-playbook"),
            "-i",
            "witness-1,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(play),
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {name: out / f"{name}.service" for name in VARIANTS}


def settings(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_unit_restarts_and_is_hardened(units: dict[str, Path]) -> None:
    unit = settings(units["defaults"])
    expected = {
        "Restart": ["on-failure"],
        "RestartPreventExitStatus": ["2"],  # an invalid config does not heal by restarting
        "KillSignal": ["SIGTERM"],  # the daemon releases its lease on SIGTERM
        "User": ["nmpi-failover"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "PrivateDevices": ["yes"],
        "CapabilityBoundingSet": [""],
        "AmbientCapabilities": [""],
        "ReadWritePaths": ["/var/lib/nmpi-failover"],
        "StateDirectory": ["nmpi-failover"],
        "Environment": ["NMPI_FAILOVER_CONFIG=/etc/nmpi-failover/config.yaml"],
    }
    for key, value in expected.items():
        assert unit.get(key) == value, key
    assert unit["ExecStart"] == [f"{BIN} watch --instance witness-1 --log-level info"]
    assert unit["ExecStartPre"] == [f"{BIN} check-config"]


def test_the_inventory_shapes_the_unit(units: dict[str, Path]) -> None:
    unit = settings(units["dry-run"])
    assert unit["ExecStart"] == [f"{BIN} watch --instance witness-1 --log-level debug --dry-run"]
    # Only the journal's folder is writable; openstacksdk finds the role's clouds.yaml.
    assert unit["ReadWritePaths"] == ["/srv/nmpi-failover"]
    assert "OS_CLIENT_CONFIG_FILE=/etc/nmpi-failover/clouds.yaml" in unit["Environment"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_systemd_accepts_the_unit(units: dict[str, Path], variant: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    # The real ExecStart path exists only once the role installed the package.
    unit = tmp_path / "nmpi-failover.service"
    unit.write_text(units[variant].read_text().replace(BIN, "/bin/true"))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
