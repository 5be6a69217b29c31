"""The systemd unit: restarts on failure, runs without privileges, writes only its journal."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from failover_testkit import REPO

UNIT = REPO / "failover" / "systemd" / "nmpi-failover.service"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_unit_restarts_and_is_hardened() -> None:
    unit = settings()
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
    }
    for key, value in expected.items():
        assert unit.get(key) == value, key
    assert unit["ExecStart"][0].endswith("nmpi-failover watch")
    assert unit["ExecStartPre"][0].endswith("nmpi-failover check-config")


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    # The real ExecStart path exists only once the role installed the package.
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text().replace("/opt/nmpi-failover/venv/bin/nmpi-failover", "/bin/true")
    )
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
