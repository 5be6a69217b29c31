"""node_exporter's textfile collector: the container's command line, rendered from the role's
real task, defaults and vars, and the precheck of its folder.

The precheck cases run on localhost with --tags precheck (no change is made).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROLES, PrecheckCase, PrecheckRunner, precheck_case, run_playbook

ROLE = ROLES / "node_exporter"
DEFAULT_FOLDER = "/var/lib/nmpi/node_exporter/textfile"


def container_command() -> str:
    """The docker_container task's `command` template, as service.yml writes it."""
    tasks = yaml.safe_load((ROLE / "tasks" / "service.yml").read_text())
    for task in tasks:
        module = task.get("community.docker.docker_container")
        if module:
            return str(module["command"])
    raise AssertionError("no docker_container task in service.yml")


def render(tmp_path: Path, variables: dict[str, object]) -> list[str]:
    out = tmp_path / "command.json"
    play: list[dict[str, Any]] = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"ansible.builtin.include_vars": f"{ROLE}/defaults/main.yml"},
                {"ansible.builtin.include_vars": f"{ROLE}/vars/main.yml"},
                {
                    "ansible.builtin.copy": {
                        "content": "{{ __command | to_json }}",
                        "dest": str(out),
                        "mode": "0644",
                    },
                    "vars": {"__command": container_command()},
                },
            ],
        }
    ]
    result = run_playbook(yaml.safe_dump(play, sort_keys=False), tmp_path, variables)
    assert result.returncode == 0, result.stdout + result.stderr
    command: list[str] = json.loads(out.read_text())
    return command


def test_default_folder_is_read_through_the_hosts_root(tmp_path: Path) -> None:
    command = render(tmp_path, {})
    assert "--path.rootfs=/host" in command
    assert f"--collector.textfile.directory=/host{DEFAULT_FOLDER}" in command
    assert "--no-collector.textfile" not in command


def test_other_folder(tmp_path: Path) -> None:
    command = render(tmp_path, {"node_exporter_textfile_directory": "/srv/metrics"})
    assert "--collector.textfile.directory=/host/srv/metrics" in command


def test_empty_folder_turns_the_collector_off(tmp_path: Path) -> None:
    command = render(
        tmp_path,
        {
            "node_exporter_textfile_directory": "",
            "node_exporter_collector_flags": ["--collector.systemd"],
        },
    )
    assert "--no-collector.textfile" in command
    assert not [flag for flag in command if flag.startswith("--collector.textfile")]
    assert command[-1] == "--collector.systemd"  # the extra flags still come last


NODE_EXPORTER_DEFAULTS = precheck_case("node_exporter", {})


def node_exporter(variables: dict[str, object]) -> PrecheckCase:
    return precheck_case("node_exporter", variables)


def test_node_exporter_defaults_pass(precheck: PrecheckRunner) -> None:
    rc, out = precheck(NODE_EXPORTER_DEFAULTS)
    assert rc == 0, out[-3000:]


def test_empty_textfile_folder_passes(precheck: PrecheckRunner) -> None:
    rc, out = precheck(node_exporter({"node_exporter_textfile_directory": ""}))
    assert rc == 0, out[-3000:]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            node_exporter({"node_exporter_textfile_directory": "var/lib/textfile"}),
            ["node_exporter_textfile_directory", "'var/lib/textfile'"],
            id="relative-folder",
        ),
        pytest.param(
            node_exporter(
                {"node_exporter_collector_flags": ["--collector.textfile.directory=/host/x"]}
            ),
            ["node_exporter_collector_flags", "--collector.textfile.directory=/host/x"],
            id="textfile-folder-as-a-flag",
        ),
        pytest.param(
            node_exporter({"node_exporter_collector_flags": ["--no-collector.textfile"]}),
            ["node_exporter_collector_flags", "refused: --no-collector.textfile"],
            id="textfile-off-as-a-flag",
        ),
    ],
)
def test_node_exporter_bad_textfile_setting_names_it(
    case: PrecheckCase, expected: list[str], precheck: PrecheckRunner
) -> None:
    rc, out = precheck(case)
    assert rc != 0, out
    message = " ".join(out.split())
    for text in expected:
        assert text in message, f"{text!r} not in output:\n{out[-3000:]}"
