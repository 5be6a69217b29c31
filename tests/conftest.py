"""Fixtures shared by the repository-level suites (tests/)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from nmpi_devstack.paths import Paths

from tests.support import REPO, tool_env

LOGS = REPO / ".cache" / "logs"
LAB_REGIONS = "castor,jusuf,witness"


def _devstack(*args: str, log: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    with log.open("a") as out:
        return subprocess.run(
            ["nmpi-devstack", *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            env=tool_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="session")
def openstack_lab() -> Iterator[Path]:
    """The local OpenStack (lab/, `nmpi-devstack`), up and healthy: its clouds.yaml.

    A lab that is already running is reused and left running; one this fixture started is
    stopped again at the end of the session (its state stays, so the next start is quick),
    unless NMPI_DEVSTACK_KEEP=1.
    """
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / "devstack.log"
    log.write_text("")
    was_running = _devstack("status", log=log, timeout=120).returncode == 0
    # All three locations: site.yml (tests/lab) needs the witness region too.
    up = _devstack("up", "--regions", LAB_REGIONS, log=log, timeout=1500)
    if up.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        pytest.fail(f"nmpi-devstack up failed (exit {up.returncode}); log: {log}\n{tail}")
    clouds = Paths.from_env().clouds_yaml  # NMPI_DEVSTACK_HOME, as nmpi-devstack reads it
    assert clouds.is_file(), f"nmpi-devstack up wrote no {clouds}"
    yield clouds
    if not was_running and os.environ.get("NMPI_DEVSTACK_KEEP") != "1":
        _devstack("down", log=log, timeout=300)
