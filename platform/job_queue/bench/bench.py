"""Benchmark of the job-queue service as deployed: gunicorn + uvicorn workers on PostgreSQL.

Starts a throw-away PostgreSQL cluster (tests/pg_harness.py), migrates it, bulk-loads jobs
with COPY, serves the API with `nmpi-job-queue serve --workers W` on 127.0.0.1 and measures:

  (a) job submissions per second with 16 concurrent clients (POST /jobs/)
  (b) GET /jobs/?collab=... latency, p50 and p99, and the database's time for its query
      (planning and execution, from pg_stat_statements), with size=10 and size=100, with --jobs
      jobs in the database of which --collab-jobs belong to the collab listed
  (c) claims per second of 4 pollers draining a platform queue (GET /jobs/next/{platform})
  (d) GET /jobs/?collab=... latency, p50, and the database's time for its query, of a quiet
      collab whose --quiet-jobs jobs are all older than the --jobs of the busy ones: its first
      page (size=10), and a page at depth --deep by from_index (offset) and by keyset (the
      before_id cursor that the Link header gives; "n/a" for a server without it)

The jobs are loaded with COPY, then VACUUM ANALYZE (what autovacuum does soon after).
Each figure is the median over --rounds rounds. Everything (clients, server, database) shares
this machine, so the figures are a floor for a dedicated deployment, not a ceiling. Traffic
goes to 127.0.0.1 only. The cluster and the server are removed at the end.

    .venv/bin/python platform/job_queue/bench/bench.py [--workers 2] [--jobs 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the PostgreSQL harness of the tests

from nmpi_job_queue import admin, migrate  # noqa: E402
from nmpi_job_queue.db import make_engine, make_sessionmaker  # noqa: E402
from nmpi_job_queue.settings import Settings  # noqa: E402
from nmpi_lab import processes  # noqa: E402
from pg_harness import PgCluster, cluster_root, free_port  # noqa: E402

SUBMIT_PLATFORM = "SpiNNaker"
CLAIM_PLATFORM = "Spikey"
BULK_PLATFORMS = ("SpiNNaker", "BrainScaleS", "BrainScaleS-2")
TARGET_SUBMISSIONS_PER_S = 300.0
TARGET_LIST_P99_MS = 100.0

CODE = """\
import pyNN.spiNNaker as sim

sim.setup(timestep=1.0)
population = sim.Population({n}, sim.IF_curr_exp(tau_m=20.0, v_thresh=-50.0))
stimulus = sim.Population({n}, sim.SpikeSourcePoisson(rate=10.0))
sim.Projection(stimulus, population, sim.OneToOneConnector(), sim.StaticSynapse(weight=0.5))
population.record("spikes")
sim.run({t}.0)
spikes = population.get_data("spikes")
sim.end()
"""


@dataclass
class Accounts:
    token: str  # editor of `collab`, `quiet_collab` and `submit_collab`
    collab: str  # the collab listed, loaded with bulk jobs
    quiet_collab: str  # older jobs only: every bulk job is newer
    submit_collab: str  # where the submissions and the claimed jobs go, not listed
    provider_key: str  # serves CLAIM_PLATFORM


# --- set-up --------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def make_accounts(database_url: str) -> Accounts:
    username = "bench-user"
    collab = "bench-lab"
    quiet_collab = "bench-archive"
    submit_collab = "bench-submissions"

    async def work() -> Accounts:
        engine = make_engine(Settings(database_url=database_url))
        try:
            async with make_sessionmaker(engine)() as session:
                await admin.add_user(session, username, full_name="Bench User")
                await admin.add_member(session, username, collab, "editor")
                await admin.add_member(session, username, quiet_collab, "editor")
                await admin.add_member(session, username, submit_collab, "editor")
                project = await admin.create_project(session, submit_collab, username, "Benchmark")
                await admin.add_quota(session, project, SUBMIT_PLATFORM, 1e9)
                token = await admin.create_token(session, username)
                key = await admin.create_provider_key(session, "bench-provider", [CLAIM_PLATFORM])
                await session.commit()
                return Accounts(token, collab, quiet_collab, submit_collab, key)
        finally:
            await engine.dispose()

    return asyncio.run(work())


def job_rows(
    count: int, collab: str, collab_jobs: int, rng: random.Random, start: datetime
) -> Iterator[tuple[Any, ...]]:
    """Finished, failed, running and removed jobs of many collabs, oldest first."""
    theirs = set(rng.sample(range(count), collab_jobs))
    other_collabs = [f"lab-{i:04d}" for i in range(400)]
    statuses = ["finished"] * 85 + ["error"] * 9 + ["removed"] * 3 + ["running"] * 3
    for i in range(count):
        mine = i in theirs
        collab_i = collab if mine else rng.choice(other_collabs)
        user = (
            f"{collab_i}-user-{rng.randrange(8)}"
            if not mine or rng.random() < 0.8
            else "bench-user"
        )
        status = rng.choice(statuses)
        platform = rng.choice(BULK_PLATFORMS)
        submitted = start + timedelta(seconds=30 * i)
        done = status in ("finished", "error")
        output = (
            Jsonb(
                [
                    {
                        "url": f"https://data.example.org/{i}/spikes.h5",
                        "path": "spikes.h5",
                        "size": 4096,
                    }
                ]
            )
            if status == "finished"
            else None
        )
        yield (
            CODE.format(n=rng.randrange(10, 1000), t=rng.randrange(100, 10_000)),
            "run.py --seed 42",
            collab_i,
            user,
            status,
            platform,
            Jsonb({"cores": rng.randrange(1, 48)}),
            Jsonb({"platform": platform, "version": "7.0"}) if done else None,
            rng.random() if done else None,
            output,
            "Fake repository" if output else None,
            [f"exp-{rng.randrange(20)}"],
            submitted,
            submitted + timedelta(minutes=5) if done else None,
        )


def bulk_insert(database_url: str, rows: Iterator[tuple[Any, ...]]) -> int:
    columns = (
        "code, command, collab, user_id, status, hardware_platform, hardware_config, provenance, "
        "resource_usage, output_data, output_repository, tags, timestamp_submission, "
        "timestamp_completion"
    )
    count = 0
    with psycopg.connect(database_url) as conn:
        with conn.cursor() as cursor, cursor.copy(f"COPY jobs ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        conn.execute("ANALYZE jobs")
    return count


def vacuum(database_url: str) -> None:
    """What autovacuum does soon after a load: statistics, and the visibility map (without it,
    index-only scans must visit the table)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE jobs")


def database_facts(database_url: str, collab: str) -> tuple[int, int, str]:
    """(jobs, jobs of `collab`, server version)."""
    with psycopg.connect(database_url) as conn:
        counts = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE collab = %s) FROM jobs", (collab,)
        ).fetchone()
        version = conn.execute("SHOW server_version").fetchone()
    total, in_collab = counts if counts else (0, 0)
    return int(total), int(in_collab), str(version[0]).split()[0] if version else "?"


def insert_queue(database_url: str, count: int, collab: str) -> None:
    """`count` submitted jobs in the claim platform's queue."""
    now = datetime.now(UTC)
    rows: Iterator[tuple[Any, ...]] = (
        ("run()", None, collab, "bench-user", "submitted", CLAIM_PLATFORM, None, None, None, None,
         None, [], now, None)
        for _ in range(count)
    )  # fmt: skip
    bulk_insert(database_url, rows)


@contextmanager
def serve(database_url: str, workers: int, logfile: Path) -> Iterator[tuple[str, int]]:
    """(base URL, gunicorn's pid) of `nmpi-job-queue serve` on a free loopback port."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "nmpi-job-queue"), "serve",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
    ]  # fmt: skip
    environment = {**os.environ, "NMPI_DATABASE_URL": database_url}
    process = processes.start(command, logfile, env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: processes.http_ok(f"{base}/readyz", timeout=2),
            60,
            "the server",
            interval=0.2,
            process=process,
            log=logfile,
        )
        yield base, process.pid
    finally:
        processes.stop(process, timeout=30)


# --- measurements --------------------------------------------------------------------------


def process_tree(root_pid: int) -> list[int]:
    """`root_pid` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


@dataclass
class CpuMeter:
    """CPU time spent by the server's processes, the database's and this client (threads too)."""

    server_pid: int
    database_pid: int

    def sample(self) -> tuple[dict[int, float], dict[int, float], float]:
        return (
            cpu_seconds(process_tree(self.server_pid)),
            cpu_seconds(process_tree(self.database_pid)),
            time.process_time(),
        )

    @staticmethod
    def spent(
        before: tuple[dict[int, float], dict[int, float], float],
        after: tuple[dict[int, float], dict[int, float], float],
    ) -> tuple[float, float, float]:
        """(server, database, client) CPU seconds between two samples."""
        server = sum(t - before[0].get(pid, 0.0) for pid, t in after[0].items())
        database = sum(t - before[1].get(pid, 0.0) for pid, t in after[1].items())
        return server, database, after[2] - before[2]


async def submissions_per_second(base: str, accounts: Accounts, jobs: int, clients: int) -> float:
    """`jobs` submissions shared by `clients` concurrent clients, each with its own connection."""
    body = {
        "code": CODE.format(n=100, t=1000),
        "command": "run.py",
        "collab": accounts.submit_collab,
        "hardware_platform": SUBMIT_PLATFORM,
        "hardware_config": {"cores": 4},
        "tags": ["bench"],
    }
    headers = {"Authorization": f"Bearer {accounts.token}"}
    remaining = iter(range(jobs))
    sessions = [
        httpx.AsyncClient(base_url=base, headers=headers, timeout=60) for _ in range(clients)
    ]

    async def client(session: httpx.AsyncClient) -> None:
        for _ in remaining:
            reply = await session.post("/jobs/", json=body)
            if reply.status_code != 201:
                raise RuntimeError(f"submission failed: {reply.status_code} {reply.text[:300]}")

    try:
        for session in sessions:  # connect before the clock starts
            await session.get("/healthz")
        started = time.perf_counter()
        await asyncio.gather(*(client(s) for s in sessions))
        return jobs / (time.perf_counter() - started)
    finally:
        for session in sessions:
            await session.aclose()


def page_latencies(
    base: str, database_url: str, accounts: Accounts, params: dict[str, str | int], requests: int
) -> tuple[list[float], float]:
    """Milliseconds of `requests` sequential GET /jobs/ with `params` (after a warm-up), and the
    database's mean milliseconds (planning and execution) of the list's query."""
    headers = {"Authorization": f"Bearer {accounts.token}"}
    timings = []
    with (
        httpx.Client(base_url=base, headers=headers, timeout=60) as client,
        psycopg.connect(database_url, autocommit=True) as stats,
    ):
        for _ in range(10):  # warm-up: connection, caches, the token cache
            client.get("/jobs/", params=params).raise_for_status()
        stats.execute("SELECT pg_stat_statements_reset()")
        for _ in range(requests):
            started = time.perf_counter()
            reply = client.get("/jobs/", params=params)
            timings.append((time.perf_counter() - started) * 1000)
            if reply.status_code != 200 or len(reply.json()) != params["size"]:
                raise RuntimeError(f"listing failed: {reply.status_code} {reply.text[:300]}")
        # The list's query is the one statement reading jobs in order (identity is cached).
        row = stats.execute(
            "SELECT sum(total_plan_time + total_exec_time) / nullif(sum(calls), 0) "
            "FROM pg_stat_statements WHERE query LIKE '%FROM jobs%' AND query LIKE '%ORDER BY%'"
        ).fetchone()
    return timings, float(row[0]) if row and row[0] is not None else float("nan")


def keyset_cursor(base: str, accounts: Accounts, depth: int) -> int | None:
    """The before_id that starts the quiet collab's list at `depth`, found by following the
    Link headers of pages of 1000; None if the server sends no Link header."""
    headers = {"Authorization": f"Bearer {accounts.token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        url = "/jobs/"
        params: dict[str, str | int] | None = {"collab": accounts.quiet_collab, "size": 1000}
        seen = 0
        while True:
            reply = client.get(url, params=params)
            reply.raise_for_status()
            jobs = reply.json()
            if seen + len(jobs) >= depth:  # the job just above `depth` bounds the page
                return int(jobs[depth - seen - 1]["id"]) if depth > seen else None
            if "next" not in reply.links:
                return None
            seen += len(jobs)
            url, params = reply.links["next"]["url"], None


def per_request(spent: tuple[float, float, float], requests: int) -> tuple[float, float, float]:
    """CPU milliseconds per request of (server, database, client)."""
    return (
        1000 * spent[0] / requests,
        1000 * spent[1] / requests,
        1000 * spent[2] / requests,
    )


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def claims_per_second(base: str, accounts: Accounts, expected: int, pollers: int) -> float:
    """`pollers` providers drain the queue of `expected` jobs; each job must come out once."""
    headers = {"x-api-key": accounts.provider_key}
    sessions = [
        httpx.AsyncClient(base_url=base, headers=headers, timeout=60) for _ in range(pollers)
    ]
    claimed: list[int] = []

    async def poller(session: httpx.AsyncClient) -> None:
        while True:
            reply = await session.get(f"/jobs/next/{CLAIM_PLATFORM}")
            if reply.status_code == 404:
                return
            if reply.status_code != 200:
                raise RuntimeError(f"claim failed: {reply.status_code} {reply.text[:300]}")
            claimed.append(reply.json()["id"])

    try:
        for session in sessions:
            await session.get("/healthz")
        started = time.perf_counter()
        await asyncio.gather(*(poller(s) for s in sessions))
        elapsed = time.perf_counter() - started
    finally:
        for session in sessions:
            await session.aclose()
    if len(claimed) != expected or len(set(claimed)) != expected:
        raise RuntimeError(
            f"{len(claimed)} claims ({len(set(claimed))} distinct), expected {expected}"
        )
    return expected / elapsed


# --- report --------------------------------------------------------------------------------


def table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("measurement", "median", "rounds", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def fmt(values: list[float], digits: int = 1) -> str:
    return " ".join(f"{v:.{digits}f}" for v in values)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn workers (default %(default)s)"
    )
    parser.add_argument(
        "--jobs", type=int, default=100_000, help="jobs bulk-loaded (default %(default)s)"
    )
    parser.add_argument(
        "--collab-jobs", type=int, default=10_000,
        help="of which in the collab listed (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--quiet-jobs", type=int, default=10_000,
        help="jobs of the quiet collab, older than all --jobs (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--deep", type=int,
        help="depth of the quiet collab's deep page (default: --quiet-jobs minus 1000)",
    )  # fmt: skip
    parser.add_argument(
        "--deep-requests", type=int, default=50,
        help="requests per quiet-collab page and round (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds per measurement (default %(default)s)"
    )
    parser.add_argument(
        "--clients", type=int, default=16, help="concurrent submitters (default %(default)s)"
    )
    parser.add_argument(
        "--submissions", type=int, default=1000, help="submissions per round (default %(default)s)"
    )
    parser.add_argument(
        "--list-requests",
        type=int,
        default=200,
        help="listings per size and round (default %(default)s)",
    )
    parser.add_argument(
        "--pollers", type=int, default=4, help="concurrent pollers (default %(default)s)"
    )
    parser.add_argument(
        "--queue", type=int, default=1000, help="jobs claimed per round (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="of the generated data (default %(default)s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the cluster and the server log")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.collab_jobs > args.jobs:
        print("bench: --collab-jobs cannot exceed --jobs", file=sys.stderr)
        return 2
    deep = args.quiet_jobs - 1000 if args.deep is None else args.deep
    if not 0 < deep <= args.quiet_jobs - 10:
        print("bench: --deep must leave a page of 10 of the --quiet-jobs", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    root = cluster_root("nmpi-bench-")
    cluster = PgCluster(root / "data", free_port(), "bench").init()
    with (cluster.datadir / "postgresql.conf").open("a") as conf:  # database time, per query
        conf.write(
            "shared_preload_libraries = 'pg_stat_statements'\n"
            "pg_stat_statements.track_planning = on\n"
        )
    cluster.start()
    try:
        database_url = cluster.create_database("nmpi_bench")
        migrate.upgrade(Settings(database_url=database_url))
        cluster.execute("CREATE EXTENSION pg_stat_statements", "nmpi_bench")
        accounts = make_accounts(database_url)
        log(
            f"loading {args.quiet_jobs} jobs in {accounts.quiet_collab}, then {args.jobs} "
            f"({args.collab_jobs} in {accounts.collab}) with COPY"
        )
        started = time.perf_counter()
        rng = random.Random(args.seed)
        begin = datetime.now(UTC) - timedelta(seconds=30 * (args.quiet_jobs + args.jobs))
        quiet = job_rows(args.quiet_jobs, accounts.quiet_collab, args.quiet_jobs, rng, begin)
        loaded = bulk_insert(database_url, quiet)
        begin += timedelta(seconds=30 * args.quiet_jobs)
        loaded += bulk_insert(
            database_url, job_rows(args.jobs, accounts.collab, args.collab_jobs, rng, begin)
        )
        vacuum(database_url)
        log(f"loaded {loaded} jobs in {time.perf_counter() - started:.1f} s")
        total, in_collab, version = database_facts(database_url, accounts.collab)
        postmaster = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
        with serve(database_url, args.workers, root / "server.log") as (base, server_pid):
            log(f"serving on {base} with {args.workers} workers")
            meter = CpuMeter(server_pid, postmaster)
            lists: dict[int, tuple[list[float], list[float], list[float]]] = {}
            for size in (10, 100):
                p50s, p99s, dbs = [], [], []
                listing: dict[str, str | int] = {"collab": accounts.collab, "size": size}
                for n in range(args.rounds):
                    timings, db_ms = page_latencies(
                        base, database_url, accounts, listing, args.list_requests
                    )
                    p50s.append(percentile(timings, 50))
                    p99s.append(percentile(timings, 99))
                    dbs.append(db_ms)
                    log(
                        f"list size={size} round {n + 1}: p50 {p50s[-1]:.1f} ms, "
                        f"p99 {p99s[-1]:.1f} ms, database {db_ms:.2f} ms"
                    )
                lists[size] = (p50s, p99s, dbs)

            cursor = keyset_cursor(base, accounts, deep)
            keyset: dict[str, str | int] | None = None if cursor is None else {"before_id": cursor}
            # (figure, label, extra parameters or None if the server cannot serve the page)
            quiet_pages: list[tuple[str, str, dict[str, str | int] | None]] = [
                ("quiet_first_page", "first page", {}),
                ("quiet_from_index", f"from_index={deep}", {"from_index": deep}),
                ("quiet_keyset", f"keyset at {deep}", keyset),
            ]
            quiet_p50s: dict[str, list[float]] = {}
            quiet_db: dict[str, list[float]] = {}
            for key, label, extra in quiet_pages:
                if extra is None:
                    log(f"quiet collab, {label}: no Link header, no cursor: n/a")
                    continue
                params = {"collab": accounts.quiet_collab, "size": 10, **extra}
                quiet_p50s[key], quiet_db[key] = [], []
                for n in range(args.rounds):
                    timings, db_ms = page_latencies(
                        base, database_url, accounts, params, args.deep_requests
                    )
                    quiet_p50s[key].append(percentile(timings, 50))
                    quiet_db[key].append(db_ms)
                    log(
                        f"quiet collab, {label}, round {n + 1}: p50 {quiet_p50s[key][-1]:.1f} ms, "
                        f"database {db_ms:.2f} ms"
                    )

            asyncio.run(submissions_per_second(base, accounts, 100, args.clients))  # warm-up
            submit_rates, submit_cpu = [], []
            for n in range(args.rounds):
                before = meter.sample()
                rate = asyncio.run(
                    submissions_per_second(base, accounts, args.submissions, args.clients)
                )
                submit_cpu.append(
                    per_request(meter.spent(before, meter.sample()), args.submissions)
                )
                submit_rates.append(rate)
                log(f"submissions round {n + 1}: {rate:.0f}/s")

            claim_rates, claim_cpu = [], []
            for n in range(args.rounds):
                insert_queue(database_url, args.queue, accounts.submit_collab)
                before = meter.sample()
                rate = asyncio.run(claims_per_second(base, accounts, args.queue, args.pollers))
                claim_cpu.append(per_request(meter.spent(before, meter.sample()), args.queue))
                claim_rates.append(rate)
                log(f"claims round {n + 1}: {rate:.0f}/s")
    finally:
        if args.keep:
            log(f"kept the cluster (port {cluster.port}) and server log under {root}")
            cluster.stop()
        else:
            cluster.remove()
            shutil.rmtree(root, ignore_errors=True)

    submit = statistics.median(submit_rates)
    claims = statistics.median(claim_rates)
    rows = [
        (
            f"submissions/s, {args.clients} clients",
            f"{submit:.0f}",
            fmt(submit_rates, 0),
            f">= {TARGET_SUBMISSIONS_PER_S:.0f} {verdict(submit >= TARGET_SUBMISSIONS_PER_S)}",
        )
    ]
    figures: dict[str, Any] = {"submissions_per_s": submit, "claims_per_s": claims}
    for size, (p50s, p99s, dbs) in lists.items():
        p50, p99 = statistics.median(p50s), statistics.median(p99s)
        rows.append((f"list size={size} p50 ms", f"{p50:.1f}", fmt(p50s), ""))
        rows.append(
            (f"list size={size} database ms", f"{statistics.median(dbs):.2f}", fmt(dbs, 2), "")
        )
        figures[f"list_size{size}_database_ms"] = statistics.median(dbs)
        rows.append(
            (
                f"list size={size} p99 ms",
                f"{p99:.1f}",
                fmt(p99s),
                f"<= {TARGET_LIST_P99_MS:.0f} {verdict(p99 <= TARGET_LIST_P99_MS)}",
            )
        )
        figures[f"list_size{size}_p50_ms"] = p50
        figures[f"list_size{size}_p99_ms"] = p99
    for key, label, _ in quiet_pages:
        for kind, found, digits in (
            ("p50", quiet_p50s.get(key), 1),
            ("database", quiet_db.get(key), 2),
        ):
            median = statistics.median(found) if found else None
            shown = "n/a" if median is None else f"{median:.{digits}f}"
            rows.append((f"quiet collab {label} {kind} ms", shown, fmt(found or [], digits), ""))
            figures[f"{key}_{kind}_ms"] = median
    rows.append((f"claims/s, {args.pollers} pollers", f"{claims:.0f}", fmt(claim_rates, 0), ""))

    cpus = os.cpu_count() or 1
    print(
        f"nmpi-job-queue benchmark: {args.workers} gunicorn workers, PostgreSQL {version}, "
        f"{cpus} CPUs shared by clients, server and database (load average {load_before:.1f} "
        f"before, {os.getloadavg()[0]:.1f} after)\n"
        f"listed with {total} jobs in the database, {in_collab} of them in the collab listed; "
        f"the quiet collab's {args.quiet_jobs} jobs are older than all the others"
    )
    print(table(rows))
    for name, cpu in (("submission", submit_cpu), ("claim", claim_cpu)):
        server, database, client = (statistics.median(c[i] for c in cpu) for i in range(3))
        figures[f"cpu_ms_per_{name}"] = {"server": server, "database": database, "client": client}
        print(
            f"CPU per {name}: server {server:.2f} ms + database {database:.2f} ms "
            f"(clients {client:.2f} ms): about {cpus * 1000 / (server + database):.0f}/s "
            f"if the service had the {cpus} CPUs to itself"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
