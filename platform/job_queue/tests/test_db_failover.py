"""Database failover under load, on real PostgreSQL: a primary, a streaming replica, a promotion.

The service is given both hosts in one libpq-style URL and is never restarted: it must find the
new primary by itself, answer 503 (not 500) while there is none, and lose no job it acknowledged.

About "no acknowledged job lost": the harness replicates asynchronously, so a commit acknowledged
just before the primary dies could in principle be missing on the replica. The primary is
therefore stopped with mode "fast": on a clean shutdown its WAL senders send all remaining WAL to
the connected standby and wait for the standby to confirm it flushed it, before the server exits.
A crash ("immediate") gives no such guarantee with asynchronous replication; in production
Patroni runs synchronous replication (synchronous_mode) so that every acknowledged commit is on
the standby that gets promoted.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import run_admin, start_server, stop_server
from nmpi_job_queue import admin, migrate
from nmpi_job_queue.settings import Settings
from pg_harness import PgCluster, cluster_root, free_port

CODE = "import pyNN.spiNNaker as sim\nsim.setup()\nsim.run(10.0)\nsim.end()\n"
PLATFORM = "SpiNNaker"
# After the promotion, submissions must succeed again within this many seconds.
RECOVERY_BOUND = 15.0
CLIENTS = 4
NO_PRIMARY_SECONDS = 2.0


@dataclass
class Pair:
    primary: PgCluster
    replica: PgCluster

    def multi_host_url(self, database: str = "nmpi") -> str:
        return (
            f"postgresql://nmpi@127.0.0.1:{self.primary.port},"
            f"127.0.0.1:{self.replica.port}/{database}"
        )


@pytest.fixture
def pair() -> Iterator[Pair]:
    """A fresh primary with the migrated `nmpi` database, and a streaming replica of it."""
    root = cluster_root("nmpi-failover-")
    primary = PgCluster(root / "primary", free_port(), "primary").init().start()
    replica: PgCluster | None = None
    try:
        url = primary.create_database("nmpi")
        migrate.upgrade(Settings(database_url=url))
        replica = primary.replica(root / "replica", free_port())
        yield Pair(primary, replica)
    finally:
        if replica is not None:
            replica.remove()
        primary.remove()
        shutil.rmtree(root, ignore_errors=True)


def make_user(database_url: str) -> tuple[str, str, str]:
    """(username, token, collab) of a new user, editor of a collab of its own."""
    name = f"user-{uuid.uuid4().hex[:10]}"
    collab = f"collab-{uuid.uuid4().hex[:10]}"

    async def work(session: Any) -> str:
        await admin.add_user(session, name, full_name=name.title())
        await admin.add_member(session, name, collab, "editor")
        return await admin.create_token(session, name)

    return name, run_admin(database_url, work), collab


@dataclass
class Tally:
    """What the submitting clients saw, shared between their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # id -> job
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    # monotonic (start, end) of each acknowledged submission
    acked_at: list[tuple[float, float]] = field(default_factory=list)


def submitter(
    base: str, token: str, collab: str, user: str, stop: threading.Event, tally: Tally
) -> None:
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=20
    ) as client:
        n = 0
        while not stop.is_set():
            n += 1
            code = f"# {user} #{n}\n{CODE}"
            started = time.monotonic()
            try:
                reply = client.post(
                    "/jobs/",
                    json={"code": code, "collab": collab, "hardware_platform": PLATFORM},
                )
            except httpx.TransportError as error:
                with tally.lock:
                    tally.errors[type(error).__name__] += 1
                time.sleep(0.2)
                continue
            ended = time.monotonic()
            with tally.lock:
                tally.statuses[reply.status_code] += 1
                if reply.status_code == 201:
                    tally.acknowledged[reply.json()["id"]] = (code, collab, user)
                    tally.acked_at.append((started, ended))
                elif reply.status_code == 503:
                    assert reply.headers.get("retry-after"), reply.headers
                else:
                    tally.unexpected.append(f"{reply.status_code}: {reply.text[:300]}")
            if reply.status_code == 503:
                time.sleep(0.2)
            else:
                time.sleep(0.01)


def wait_until(predicate: Any, timeout: float, step: float = 0.1) -> float:
    """Seconds until predicate() is true; fails after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"not true within {timeout}s: {predicate}")


def ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def stored_jobs(cluster: PgCluster, ids: list[int]) -> dict[int, tuple[str, str, str]]:
    with psycopg.connect(cluster.url("nmpi"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id, code, collab, user_id FROM jobs WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def test_failover_under_load_loses_no_acknowledged_job(pair: Pair, tmp_path: Path) -> None:
    users = [make_user(pair.primary.url("nmpi")) for _ in range(CLIENTS)]
    pair.primary.wait_for_replay(pair.replica)
    process, base = start_server(
        pair.multi_host_url(),
        tmp_path / "server.log",
        NMPI_DATABASE_CONNECT_TIMEOUT="2",
        NMPI_DATABASE_POOL_SIZE="4",
    )
    stop = threading.Event()
    tally = Tally()
    threads = [
        threading.Thread(
            target=submitter, args=(base, token, collab, name, stop, tally), daemon=True
        )
        for name, token, collab in users
    ]
    try:
        assert ready(base)
        for thread in threads:
            thread.start()
        wait_until(lambda: len(tally.acknowledged) >= 40, timeout=60)
        before = len(tally.acknowledged)

        # --- the failover: replica catches up, primary stops cleanly, replica is promoted.
        pair.primary.wait_for_replay(pair.replica)
        switch_started = time.monotonic()
        pair.primary.stop("fast")
        primary_stopped = time.monotonic()
        # No primary for a while (what failure detection takes in production): the service
        # must answer 503 throughout, and the clients keep trying.
        time.sleep(NO_PRIMARY_SECONDS)
        pair.replica.promote()
        promoted = time.monotonic()
        assert not pair.replica.is_in_recovery()

        def submitted_after_promotion() -> bool:
            with tally.lock:
                return any(start >= promoted for start, _ in tally.acked_at)

        recovery = wait_until(submitted_after_promotion, timeout=RECOVERY_BOUND)
        readyz_recovery = wait_until(lambda: ready(base), timeout=RECOVERY_BOUND)
        # keep the load on a little longer on the new primary
        target = len(tally.acknowledged) + 40
        wait_until(lambda: len(tally.acknowledged) >= target, timeout=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        stop_server(process)

    with tally.lock:
        acknowledged = dict(tally.acknowledged)
        first_ack_after = min(end for start, end in tally.acked_at if start >= promoted)
    outage = first_ack_after - switch_started
    print(
        f"\nfailover: primary stop {primary_stopped - switch_started:.2f}s, "
        f"promotion {promoted - primary_stopped:.2f}s later; first 201 after promotion in "
        f"{recovery:.2f}s, /readyz 200 after {readyz_recovery:.2f}s; outage seen by clients "
        f"{outage:.2f}s; acknowledged {len(acknowledged)} ({before} before the switch), "
        f"statuses {dict(tally.statuses)}, transport errors {dict(tally.errors)}"
    )
    assert tally.unexpected == [], tally.unexpected[:5]
    assert tally.statuses[503] > 0  # the clients did run into the switch
    # 503s are answered, not raised: uvicorn logs no traceback and keeps the connection open.
    assert "Exception in ASGI application" not in (tmp_path / "server.log").read_text()
    assert recovery < RECOVERY_BOUND
    # Every acknowledged job is on the new primary, with what was submitted.
    stored = stored_jobs(pair.replica, list(acknowledged))
    lost = sorted(set(acknowledged) - set(stored))
    assert lost == [], f"{len(lost)} acknowledged jobs lost: {lost[:20]}"
    for job_id, job in acknowledged.items():
        assert stored[job_id] == job, job_id


def test_readyz_refuses_a_standby_and_recovers_on_promotion(pair: Pair, tmp_path: Path) -> None:
    _, token, collab = make_user(pair.primary.url("nmpi"))
    pair.primary.wait_for_replay(pair.replica)
    # Only the standby is listed: with target_session_attrs=read-write the service cannot use it.
    replica_url = pair.replica.url("nmpi")
    process, base = start_server(
        replica_url, tmp_path / "server.log", NMPI_DATABASE_CONNECT_TIMEOUT="2"
    )
    try:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=20
        ) as client:
            reply = client.get("/readyz")
            assert reply.status_code == 503, reply.text
            assert "database unreachable" in reply.json()["detail"]
            job = {"code": CODE, "collab": collab, "hardware_platform": PLATFORM}
            refused = client.post("/jobs/", json=job)
            assert refused.status_code == 503, refused.text
            assert refused.headers.get("retry-after")
            assert client.get("/jobs/").status_code == 503
            # The service itself is alive all along.
            assert client.get("/healthz").status_code == 200

            pair.primary.stop("fast")
            pair.replica.promote()
            promoted = time.monotonic()
            wait_until(lambda: ready(base), timeout=RECOVERY_BOUND)
            created = client.post("/jobs/", json=job)
            assert created.status_code == 201, created.text
            print(f"\nstandby promoted: ready again after {time.monotonic() - promoted:.2f}s")
            assert client.get(f"/jobs/{created.json()['id']}").status_code == 200
    finally:
        stop_server(process)
    assert "Exception in ASGI application" not in (tmp_path / "server.log").read_text()
