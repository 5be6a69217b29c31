"""A point-in-time restore of the whole cluster on the lab, as an operator runs it.

The leader moves to jusuf first (the WAL archive must follow it). The demo user submits jobs,
the time is noted, more jobs come, then an operator's mistake empties the job table at both
sites (synchronous replication copies it faithfully). `playbooks/db-restore.yml` brings the
cluster back to the noted time: every job submitted before it is there, none after, the
platform takes writes again through its public name, and both sites are in sync.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from nmpi_lab import deployment

from tests.lab.conftest import site_yml
from tests.support import eventually

pytestmark = [pytest.mark.slow, pytest.mark.lab]

PATRONICTL = "sudo docker exec nmpi-patroni patronictl"
PLATFORM = "Test"  # no hardware site takes these jobs: they stay as submitted


def _submit(lab: deployment.Deployment, label: str) -> int | None:
    body = {
        "command": "run.py",
        "hardware_platform": PLATFORM,
        "collab": deployment.DEMO_COLLAB,
        "code": f"print('{label}')",
        "tags": ["restore-test"],
    }
    headers = {"Authorization": f"Bearer {lab.demo_token()}"}
    try:
        with lab.public_name_resolved():
            response = httpx.post(
                f"{lab.url}/jobs/", json=body, headers=headers, verify=str(lab.ca_file), timeout=10
            )
    except httpx.HTTPError:
        return None
    return int(response.json()["id"]) if response.status_code == 201 else None


def _accepted(lab: deployment.Deployment, label: str) -> int:
    """A job the platform accepted (retried while it settles), its id."""
    job_id = eventually(lambda: _submit(lab, label), timeout=120)
    assert job_id, f"the platform did not accept the job {label!r}"
    return job_id


def _job_status(lab: deployment.Deployment, job_id: int) -> int:
    headers = {"Authorization": f"Bearer {lab.demo_token()}"}
    with lab.public_name_resolved():
        response = httpx.get(
            f"{lab.url}/jobs/{job_id}?with_log=false",
            headers=headers,
            verify=str(lab.ca_file),
            timeout=10,
        )
    return response.status_code


def _leader(lab: deployment.Deployment) -> str | None:
    try:
        members = lab.patroni_cluster()["members"]
    except ConnectionError:
        return None
    return next((m["name"] for m in members if m["role"] == "leader"), None)


def _in_sync(lab: deployment.Deployment) -> dict[str, Any] | None:
    try:
        members = lab.patroni_cluster()["members"]
    except ConnectionError:
        return None
    leader = [m for m in members if m["role"] == "leader" and m["state"] == "running"]
    sync = [m for m in members if m["role"] == "sync_standby" and m["state"] == "streaming"]
    return {"leader": leader[0]["name"], "sync": sync[0]["name"]} if leader and sync else None


def _archive(lab: deployment.Deployment) -> None:
    """pgBackRest's check at the witness: a WAL switch on the leader, archived before it returns."""
    lab.ssh(lab.backup_repository, f"{deployment.PGBACKREST} check", timeout=300)


def test_a_point_in_time_restore_after_a_failover_to_jusuf(
    lab: deployment.Deployment, openstack_lab: Path
) -> None:
    # The leader moves to jusuf: what it writes from now on is archived from there.
    if _leader(lab) != "jusuf-db-1":
        lab.ssh(
            lab.hosts["castor-db-1"],
            f"{PATRONICTL} switchover --leader castor-db-1 --candidate jusuf-db-1 --force",
        )
    assert eventually(lambda: (_in_sync(lab) or {}).get("leader") == "jusuf-db-1", 300), (
        lab.patroni_cluster()
    )

    before = [_accepted(lab, f"before {i}") for i in range(5)]
    time.sleep(1.5)
    utc_now = "SELECT to_char(now() AT TIME ZONE 'utc', 'YYYY-MM-DD HH24:MI:SS')"
    target = lab.database_sql(lab.hosts["jusuf-db-1"], utc_now)
    time.sleep(1.5)
    after = [_accepted(lab, f"after {i}") for i in range(5)]
    # The operator's mistake, replicated to both sites at once.
    lab.database_sql(lab.hosts["jusuf-db-1"], "TRUNCATE jobs CASCADE")
    assert _job_status(lab, before[0]) == 404
    _archive(lab)  # the WAL past the target is in the archive: the restore knows where to stop

    code, output, seconds = site_yml(
        openstack_lab,
        "db-restore-lab.log",
        "-e",
        f"restore_target='{target}'",
        "-e",
        "restore_confirm=lab",
        playbook="playbooks/db-restore.yml",
    )
    assert code == 0, output[-4000:]
    print(f"db-restore.yml to {target} UTC: {seconds:.0f} s")

    # Both sites in sync, the preferred site leading, the platform writable again.
    assert eventually(
        lambda: _in_sync(lab) == {"leader": "castor-db-1", "sync": "jusuf-db-1"}, 300
    ), lab.patroni_cluster()
    assert eventually(lambda: _submit(lab, "after the restore"), timeout=300)
    assert [_job_status(lab, job_id) for job_id in before] == [200] * 5
    assert [_job_status(lab, job_id) for job_id in after] == [404] * 5
