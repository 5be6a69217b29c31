"""GET /jobs/ reads its pages through the (key, status, id) indexes, whatever the data.

On a table where the choice matters (a quiet collab's 6,000 old jobs under 54,000 newer jobs of
busy collabs), the obvious query walks the primary key backwards through the newer jobs; the
service's query (domain/job_lists.py) reads each page from the indexes, the index alone for
the ids, in PostgreSQL's plans for both custom and generic (prepared, reused) plans. Plans are
asserted, not timings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from nmpi_job_queue import migrate
from nmpi_job_queue.domain import job_lists
from nmpi_job_queue.domain.job_lists import JobListing
from nmpi_job_queue.settings import Settings
from pg_harness import PgCluster
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

QUIET, BUSY = 6_000, 54_000
# About the size of a real job's script, so that rows per page are realistic.
CODE = "repeat('population.record(''spikes'')\n', 12)"


@pytest.fixture(scope="module")
def plans_db(pg: PgCluster) -> Iterator[psycopg.Connection[Any]]:
    """A database of its own: the quiet collab's jobs first (oldest), then the busy ones."""
    url = pg.create_database("nmpi_plans")
    migrate.upgrade(Settings(database_url=url))
    # No automatic server-side statements: explain() deallocates all of them.
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute(
            f"""
            INSERT INTO jobs (code, collab, user_id, status, hardware_platform, tags,
                              timestamp_submission)
            SELECT {CODE}, 'quiet-lab', 'quiet-user-' || n % 4,
                   (ARRAY['finished', 'finished', 'finished', 'finished', 'finished',
                          'finished', 'error', 'running', 'submitted', 'removed'])[1 + n % 10],
                   (ARRAY['SpiNNaker', 'BrainScaleS', 'BrainScaleS-2'])[1 + n % 3],
                   ARRAY['exp-' || n % 7], now() - interval '30 days' + n * interval '1 s'
            FROM generate_series(1, {QUIET}) n
            """
        )
        conn.execute(
            f"""
            INSERT INTO jobs (code, collab, user_id, status, hardware_platform, tags,
                              timestamp_submission)
            SELECT {CODE}, 'lab-' || n % 200, 'lab-' || n % 200 || '-user-' || n % 5,
                   (ARRAY['finished', 'finished', 'finished', 'finished', 'finished',
                          'finished', 'finished', 'error', 'running', 'submitted'])[1 + n % 10],
                   (ARRAY['SpiNNaker', 'BrainScaleS', 'BrainScaleS-2', 'Spikey'])[1 + n % 4],
                   ARRAY['exp-' || n % 7], now() - interval '20 days' + n * interval '1 s'
            FROM generate_series(1, {BUSY}) n
            """
        )
        # What autovacuum does on its own shortly after such a load: statistics, and the
        # visibility map that lets index-only scans skip the table.
        conn.execute("VACUUM ANALYZE jobs")
        yield conn


def explain(
    conn: psycopg.Connection[Any], sql: str, values: list[Any], *, generic: bool
) -> dict[str, Any]:
    """EXPLAIN ANALYZE of `sql` ($1... parameters) as a prepared statement, as asyncpg runs it."""
    mode = "force_generic_plan" if generic else "force_custom_plan"
    conn.execute(f"SET plan_cache_mode = {mode}")
    conn.execute("DEALLOCATE ALL")
    conn.execute(f"PREPARE listing AS {sql}")
    arguments = ", ".join(["%s"] * len(values))
    with psycopg.ClientCursor(conn) as cursor:  # EXECUTE takes no server-side parameters
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE listing({arguments})", values)
        row = cursor.fetchone()
    assert row is not None
    plan: dict[str, Any] = row[0][0]["Plan"]
    return plan


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def page_plan(
    conn: psycopg.Connection[Any],
    listing: JobListing,
    *,
    limit: int,
    generic: bool,
    offset: int = 0,
    before_id: int | None = None,
) -> dict[str, Any]:
    """The plan of the service's query for this page, once its result is checked."""
    query, parameters = job_lists.page_query(
        listing, limit=limit, offset=offset, before_id=before_id
    )
    compiled = query.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    assert compiled.positiontup is not None
    bound = compiled.construct_params(parameters)
    values = [bound[name] for name in compiled.positiontup]
    plan = explain(conn, str(compiled), values, generic=generic)
    arguments = ", ".join(["%s"] * len(values))
    with psycopg.ClientCursor(conn) as cursor:
        cursor.execute(f"EXECUTE listing({arguments})", values)
        page = [row[0] for row in cursor.fetchall()]
    expected = conn.execute(
        f"SELECT id FROM jobs WHERE {listing.key} = ANY(%s) AND status = ANY(%s) AND id < %s "
        "ORDER BY id DESC OFFSET %s LIMIT %s",
        (list(listing.values), list(listing.statuses), before_id or 2**63 - 1, offset, limit),
    ).fetchall()
    assert page == [row[0] for row in expected]
    return plan


def assert_reads_index(plan: dict[str, Any], index: str, most: int) -> None:
    """Ids come newest first from `index` alone, `most` entries at the most; the table is read
    only for the rows of the page, by primary key."""
    scans = [n for n in nodes(plan) if n.get("Relation Name") == "jobs"]
    on_index = [n for n in scans if n.get("Index Name") == index]
    assert on_index, (
        f"{index} is not used: {[(n['Node Type'], n.get('Index Name')) for n in scans]}"
    )
    for scan in on_index:
        assert scan["Node Type"] == "Index Only Scan"
        assert scan["Scan Direction"] == "Backward"
        assert scan["Heap Fetches"] == 0
    read = sum(n["Actual Rows"] * n["Actual Loops"] for n in on_index)
    assert read <= most, f"{read} index entries read for a page"
    others = [n for n in scans if n.get("Index Name") != index]
    for scan in others:  # the page's rows, one primary-key lookup each
        assert scan["Node Type"] == "Index Scan"
        assert scan["Index Name"] == "pk_jobs"
        assert scan["Scan Direction"] == "Forward"
        assert "Index Cond" in scan


def test_the_obvious_query_would_walk_the_primary_key(plans_db: psycopg.Connection[Any]) -> None:
    """Why the fixture matters: PostgreSQL bets on the primary key for this page, and loses."""
    conn = plans_db
    conn.execute("SET plan_cache_mode = auto")
    row = conn.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM jobs WHERE collab = 'quiet-lab' "
        "AND status <> 'removed' ORDER BY id DESC LIMIT 11"
    ).fetchone()
    assert row is not None
    walk = [n for n in nodes(row[0][0]["Plan"]) if n.get("Index Name") == "pk_jobs"]
    assert walk
    assert walk[0]["Scan Direction"] == "Backward"
    assert walk[0]["Rows Removed by Filter"] >= BUSY  # every newer job of the others


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
def test_collab_pages_read_the_collab_index(
    plans_db: psycopg.Connection[Any], generic: bool
) -> None:
    conn = plans_db
    statuses = len(job_lists.LISTED_STATUSES)
    collab = JobListing("collab", ["quiet-lab"])  # the Job Manager's list: any status
    first = page_plan(conn, collab, limit=11, generic=generic)
    assert_reads_index(first, "ix_jobs_collab_status_id", statuses * 11)
    # Deep, by keyset: the same work as the first page.
    middle = conn.execute(
        "SELECT id FROM jobs WHERE collab = 'quiet-lab' ORDER BY id DESC OFFSET 5000 LIMIT 1"
    ).fetchone()
    assert middle is not None
    deep = page_plan(conn, collab, limit=11, before_id=middle[0], generic=generic)
    assert_reads_index(deep, "ix_jobs_collab_status_id", statuses * 11)
    # Deep, by offset: the skipped jobs are stepped over in the index, never read.
    offset = page_plan(conn, collab, limit=11, offset=5000, generic=generic)
    assert_reads_index(offset, "ix_jobs_collab_status_id", statuses * 5011)
    # Several collabs: each read from its own part of the index.
    both = JobListing("collab", ["quiet-lab", "lab-7"])
    plan = page_plan(conn, both, limit=11, generic=generic)
    assert_reads_index(plan, "ix_jobs_collab_status_id", 2 * statuses * 11)


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
def test_the_clients_lists_read_their_indexes(
    plans_db: psycopg.Connection[Any], generic: bool
) -> None:
    conn = plans_db
    # completed_jobs(collab): size=100000, served as the maximum page.
    completed = JobListing("collab", ["quiet-lab"], ["finished", "error"])
    plan = page_plan(conn, completed, limit=10_001, generic=generic)
    assert_reads_index(plan, "ix_jobs_collab_status_id", QUIET)
    # queued_jobs(): the caller's submitted and running jobs.
    queued = JobListing("user_id", ["quiet-user-1"], ["submitted", "running"])
    plan = page_plan(conn, queued, limit=1001, generic=generic)
    assert_reads_index(plan, "ix_jobs_user_id_status_id", QUIET // 4)
    # A hardware site's running jobs.
    running = JobListing("hardware_platform", ["SpiNNaker", "BrainScaleS"], ["running"])
    plan = page_plan(conn, running, limit=11, generic=generic)
    assert_reads_index(plan, "ix_jobs_platform_status_id", 2 * 11)
