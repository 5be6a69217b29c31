"""The daemon.json that docker_engine writes, rendered from its real template and defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROLES, run_playbook

ROLE = ROLES / "docker_engine"


def render(tmp_path: Path, variables: dict[str, object]) -> dict[str, Any]:
    out = tmp_path / "daemon.json"
    play = f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_vars: {ROLE}/defaults/main.yml
    - ansible.builtin.template:
        src: {ROLE}/templates/daemon.json.j2
        dest: {out}
        mode: "0644"
"""
    result = run_playbook(play, tmp_path, variables)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_defaults(tmp_path: Path) -> None:
    assert render(tmp_path, {}) == {
        "default-address-pools": [{"base": "172.30.0.0/16", "size": 24}],
        "live-restore": True,
        "log-driver": "local",
        "log-opts": {"max-file": "5", "max-size": "20m"},
        "storage-driver": "overlay2",
    }


@pytest.mark.parametrize("driver", ["journald", "syslog", "none"])
def test_rotation_options_only_for_file_drivers(tmp_path: Path, driver: str) -> None:
    config = render(tmp_path, {"docker_engine_log_driver": driver})
    assert config["log-driver"] == driver
    assert "log-opts" not in config  # dockerd refuses max-size for these drivers


def test_optional_settings_appear_only_when_set(tmp_path: Path) -> None:
    config = render(
        tmp_path,
        {
            "docker_engine_bridge_ip": "172.30.255.1/24",
            "docker_engine_metrics_address": "127.0.0.1:9323",
            "docker_engine_registry_mirrors": ["https://mirror.example"],
            "docker_engine_insecure_registries": ["registry.lab:5000"],
        },
    )
    assert config["bip"] == "172.30.255.1/24"
    assert config["metrics-addr"] == "127.0.0.1:9323"
    assert config["registry-mirrors"] == ["https://mirror.example"]
    assert config["insecure-registries"] == ["registry.lab:5000"]


def test_daemon_options_merge_last(tmp_path: Path) -> None:
    config = render(
        tmp_path, {"docker_engine_daemon_options": {"live-restore": False, "debug": True}}
    )
    assert config["live-restore"] is False
    assert config["debug"] is True
    assert config["log-driver"] == "local"
