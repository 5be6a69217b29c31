"""Pollers racing over one queue: each job is claimed by exactly one of them, none is missed.

A gunicorn server with several uvicorn workers (the production `nmpi-job-queue serve`), on a
database of its own, so that no other test's jobs or maintenance switch get in the way.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import run_admin, stop_server
from nmpi_job_queue import admin, migrate
from nmpi_job_queue.settings import Settings
from nmpi_lab import processes
from pg_harness import PgCluster, free_port

PLATFORM = "Spikey"
JOBS = 200
POLLERS = 4
WORKERS = 3


@pytest.fixture(scope="module")
def race_database(pg: PgCluster) -> str:
    url = pg.create_database(f"claim_race_{uuid.uuid4().hex[:8]}")
    migrate.upgrade(Settings(database_url=url))
    return url


@pytest.fixture(scope="module")
def gunicorn_server(race_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`nmpi-job-queue serve --workers 3` on loopback: several processes claim at once."""
    port = free_port()
    log = tmp_path_factory.mktemp("claim-race") / "server.log"
    environment = {
        **os.environ,
        "NMPI_DATABASE_URL": race_database,
        "NMPI_LOG_LEVEL": "WARNING",
    }
    command = [
        str(Path(sys.executable).parent / "nmpi-job-queue"), "serve",
        "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
    ]  # fmt: skip
    process = processes.start(command, log, env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: processes.http_ok(f"{base}/readyz", timeout=2),
            60,
            "gunicorn",
            interval=0.2,
            process=process,
            log=log,
        )
    except BaseException:
        stop_server(process)
        raise
    yield base
    stop_server(process)


def make_submitter_and_provider(database_url: str) -> tuple[str, str, str]:
    """(user token, collab, provider key): a collab with quota enough for every job."""
    username = f"racer-{uuid.uuid4().hex[:8]}"
    collab = f"race-{uuid.uuid4().hex[:8]}"

    async def work(session: Any) -> tuple[str, str]:
        await admin.add_user(session, username, full_name="Race Submitter")
        await admin.add_member(session, username, collab, "editor")
        project = await admin.create_project(session, collab, username, "Claim race")
        await admin.add_quota(session, project, PLATFORM, 10_000.0)
        token = await admin.create_token(session, username)
        key = await admin.create_provider_key(session, f"spikey-{uuid.uuid4().hex[:6]}", [PLATFORM])
        return token, key

    token, key = run_admin(database_url, work)
    return token, collab, key


def poll_until_empty(
    base: str, api_key: str, start: threading.Barrier, claimed: list[int], errors: list[str]
) -> None:
    with httpx.Client(base_url=base, headers={"x-api-key": api_key}, timeout=30) as client:
        start.wait()
        for _ in range(JOBS + 10):  # bounded: never more claims than jobs, plus the final 404
            reply = client.get(f"/jobs/next/{PLATFORM}")
            if reply.status_code == 404:
                return
            if reply.status_code != 200:
                errors.append(f"{reply.status_code}: {reply.text[:200]}")
                return
            job = reply.json()
            # Leased, not confirmed: still queued for the user, with the claim id.
            if job["status"] != "submitted" or "id" not in job.get("claim", {}):
                errors.append(f"job {job['id']} claimed with status {job['status']}")
            claimed.append(job["id"])
        errors.append("poller never saw an empty queue")


def test_each_job_is_claimed_exactly_once(gunicorn_server: str, race_database: str) -> None:
    token, collab, key = make_submitter_and_provider(race_database)
    with httpx.Client(
        base_url=gunicorn_server, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as user:
        submitted = []
        for i in range(JOBS):
            reply = user.post(
                "/jobs/",
                json={"code": f"run({i})", "collab": collab, "hardware_platform": PLATFORM},
            )
            assert reply.status_code == 201, reply.text
            submitted.append(reply.json()["id"])
    assert len(set(submitted)) == JOBS

    start = threading.Barrier(POLLERS)
    claimed: list[list[int]] = [[] for _ in range(POLLERS)]
    errors: list[str] = []
    threads = [
        threading.Thread(
            target=poll_until_empty, args=(gunicorn_server, key, start, claimed[n], errors)
        )
        for n in range(POLLERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a poller is still running"
    assert not errors, errors

    every_claim = [job_id for ids in claimed for job_id in ids]
    duplicates = sorted({j for j in every_claim if every_claim.count(j) > 1})
    assert not duplicates, f"claimed more than once: {duplicates}"
    missed = sorted(set(submitted) - set(every_claim))
    assert not missed, f"never claimed: {missed}"
    assert sorted(every_claim) == sorted(submitted)
    assert sum(1 for ids in claimed if ids) >= 2, [len(ids) for ids in claimed]  # a real race

    with httpx.Client(base_url=gunicorn_server, headers={"x-api-key": key}, timeout=30) as provider:
        assert provider.get(f"/jobs/next/{PLATFORM}").status_code == 404
        # Every job is leased, none confirmed: all still queued as far as their user sees.
        waiting = provider.get(
            "/jobs/", params={"collab": collab, "status": "submitted", "size": JOBS}
        )
        assert waiting.status_code == 200
        assert sorted(j["id"] for j in waiting.json()) == sorted(submitted)
