"""The lab suites' shared deployment: site.yml on the local OpenStack, once per session.

The session deploys with `ansible-playbook site.yml -i inventories/lab` (a lab that is already
deployed only converges again); every module of tests/lab checks the same deployment.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from nmpi_lab import deployment

from tests.support import REPO, tool_env

LOGS = REPO / ".cache" / "logs"
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def site_yml(
    clouds: Path, log_name: str, *args: str, playbook: str = "site.yml"
) -> tuple[int, str, float]:
    """Run site.yml (or another playbook) on the lab inventory: (return code, output,
    seconds); output in .cache/logs."""
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = subprocess.run(
        ["ansible-playbook", playbook, "-i", "inventories/lab", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(OS_CLIENT_CONFIG_FILE=str(clouds), ANSIBLE_NOCOLOR="1"),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = result.stdout + result.stderr
    (LOGS / log_name).write_text(output)
    return result.returncode, output, time.monotonic() - started


def recap(output: str) -> dict[str, tuple[int, int, int]]:
    """PLAY RECAP per host: (changed, unreachable, failed)."""
    return {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in RECAP.finditer(output)}


@pytest.fixture(scope="session")
def lab(openstack_lab: Path) -> deployment.Deployment:
    # NMPI_LAB_DEPLOYED=1: the lab as `make lab` left it, site.yml not run again (the inner
    # loop while working on one lab suite; make test never sets it).
    if os.environ.get("NMPI_LAB_DEPLOYED") == "1":
        return deployment.load()
    code, output, seconds = site_yml(openstack_lab, "site-lab.log")
    assert code == 0, (
        f"site.yml failed after {seconds:.0f} s; log .cache/logs/site-lab.log\n" + (output[-4000:])
    )
    return deployment.load()
