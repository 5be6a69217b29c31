"""GET /jobs/ filters of the web app: submitted_after / submitted_before, search (a job id, or a
text in the command or a tag), fields=summary; with the other filters and with paging.

The last tests check, on 100,000 jobs, that a search reads the trigram index (migration 0004)
when its text is rare, and that an id search and the date filters keep to the indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from conftest import Account
from nmpi_job_queue import migrate
from nmpi_job_queue.domain import job_lists
from nmpi_job_queue.domain.job_lists import JobListing
from nmpi_job_queue.settings import Settings
from pg_harness import PgCluster
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

Api = Callable[..., httpx.Client]
DAY = datetime(2026, 1, 1, tzinfo=UTC)


def submit(client: httpx.Client, collab: str, **fields: Any) -> int:
    job = {"code": "print('needle')", "collab": collab, "hardware_platform": "Demo", **fields}
    reply = client.post("/jobs/", json=job)
    assert reply.status_code == 201, reply.text
    job_id: int = reply.json()["id"]
    return job_id


def ids(reply: httpx.Response) -> list[int]:
    assert reply.status_code == 200, reply.text
    return [job["id"] for job in reply.json()]


def set_submitted(database_url: str, when: dict[int, datetime]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for job_id, moment in when.items():
            conn.execute(
                "UPDATE jobs SET timestamp_submission = %s WHERE id = %s", (moment, job_id)
            )


def test_submitted_after_and_before(
    api: Api, new_user: Callable[..., Account], database_url: str
) -> None:
    alice = new_user()
    http = api(alice.token)
    first, second, third = (submit(http, alice.collab) for _ in range(3))
    set_submitted(
        database_url, {first: DAY, second: DAY + timedelta(days=1), third: DAY + timedelta(days=2)}
    )

    def listed(**params: str) -> list[int]:
        return ids(http.get("/jobs/", params={"collab": alice.collab, **params}))

    assert listed(submitted_after="2026-01-02T00:00:00Z") == [third, second]  # at or after
    assert listed(submitted_before="2026-01-02T00:00:00+00:00") == [first]  # strictly before
    both = {"submitted_after": "2026-01-02T00:00:00Z", "submitted_before": "2026-01-03T00:00:00Z"}
    assert listed(**both) == [second]
    # No offset: UTC. Another offset: the same moment.
    assert listed(submitted_after="2026-01-02T00:00:00") == [third, second]
    assert listed(submitted_after="2026-01-02T01:00:00+01:00") == [third, second]
    assert listed(submitted_before="2026-01-01") == []  # a date is its midnight
    assert listed(submitted_after="2026-01-01T00:29:59+00:30") == [third, second, first]
    # With the other filters.
    assert listed(submitted_after="2026-01-02T00:00:00Z", status="finished") == []
    assert listed(submitted_after="2026-01-02T00:00:00Z", status="submitted") == [third, second]
    # Bad input: 422 naming the parameter.
    bad = http.get("/jobs/", params={"submitted_after": "yesterday"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("query.submitted_after:")
    reversed_range = http.get(
        "/jobs/",
        params={"submitted_after": "2026-01-03T00:00:00Z", "submitted_before": "2026-01-02"},
    )
    assert reversed_range.status_code == 422
    assert reversed_range.json()["detail"] == (
        "query.submitted_after: must not be later than submitted_before"
    )


def test_search_by_id_command_or_tag(api: Api, new_user: Callable[..., Account]) -> None:
    alice = new_user()
    http = api(alice.token)
    seed = submit(http, alice.collab, command="run.py --seed 42 {system}")
    tagged = submit(http, alice.collab, command="analyse.py", tags=["Sweep-A", "baseline"])
    percent = submit(http, alice.collab, command="progress_100% done")
    plain = submit(http, alice.collab)  # no command, no tags
    other = new_user()
    elsewhere = submit(api(other.token), other.collab, command="run.py --seed 42")

    def found(search: str) -> list[int]:
        return ids(http.get("/jobs/", params={"collab": alice.collab, "search": search}))

    assert found("SEED 4") == [seed]  # any case
    assert found("sweep-a") == [tagged]  # in a tag
    assert found("eep-") == [tagged]  # part of a tag
    assert found(".py") == [tagged, seed]
    assert found("needle") == []  # the code is not searched
    assert found("%") == [percent]  # LIKE's characters are themselves
    assert found("s_1") == [percent]
    assert found("_100%") == [percent]
    assert found("baselinesweep") == []  # no match across two tags...
    assert found("py sweep") == []  # ...nor across the command and a tag
    # All digits: the job with that id, within the list asked for.
    assert found(str(plain)) == [plain]
    assert found(f" {seed} ") == [seed]
    assert found(str(elsewhere)) == []  # another collab's
    assert found("9" * 30) == []  # no such id (past BIGINT)
    assert found("   ") == [plain, percent, tagged, seed]  # blank: no filter
    # Combined with the other filters.
    both = {"collab": alice.collab, "search": ".py", "tags": "baseline"}
    assert ids(http.get("/jobs/", params=both)) == [tagged]
    assert ids(http.get("/jobs/", params={"search": "seed 42"})) == [seed]  # own jobs, any collab
    # Refused: 422 naming the parameter.
    too_long = http.get("/jobs/", params={"search": "x" * 101})
    assert too_long.status_code == 422
    assert too_long.json()["detail"].startswith("query.search:")
    control = http.get("/jobs/", params={"search": "run\tpy"})
    assert control.status_code == 422
    assert "control characters" in control.json()["detail"]


def test_filters_survive_paging(
    api: Api, new_user: Callable[..., Account], database_url: str
) -> None:
    alice = new_user()
    http = api(alice.token)
    matching = [submit(http, alice.collab, command=f"sweep.py --point {n}") for n in range(5)]
    submit(http, alice.collab, command="other.py")
    too_old = submit(http, alice.collab, command="sweep.py --point old")
    set_submitted(database_url, {too_old: DAY})
    yesterday = datetime.now(UTC) - timedelta(days=1)
    params = {
        "collab": alice.collab,
        "search": "SWEEP",
        "submitted_after": yesterday.astimezone(timezone(timedelta(hours=2))).isoformat(),
        "status": "submitted",
        "fields": "summary",
        "size": "2",
    }
    reply = http.get("/jobs/", params=params)
    seen: list[int] = []
    pages = 0
    while True:
        pages += 1
        seen += ids(reply)
        assert all("code" not in job for job in reply.json())
        if "next" not in reply.links:
            break
        url = reply.links["next"]["url"]
        kept = parse_qs(urlsplit(url).query)
        for name, value in params.items():
            assert kept[name] == [value], name  # every filter, as sent (the '+' too)
        reply = http.get(url)
    assert seen == sorted(matching, reverse=True)
    assert pages == 3


def test_summary_leaves_out_code_and_log(api: Api, new_user: Callable[..., Account]) -> None:
    alice = new_user()
    http = api(alice.token)
    submit(http, alice.collab, command="run.py", tags=["t1"])
    full = http.get("/jobs/", params={"collab": alice.collab}).json()[0]
    summary = http.get("/jobs/", params={"collab": alice.collab, "fields": "summary"}).json()[0]
    assert {"code", "log", "comments"} <= full.keys()
    assert full["log"] is None  # lists never carry the log
    assert full.keys() - summary.keys() == {"code", "log", "comments"}
    assert {k: v for k, v in full.items() if k in summary} == summary
    explicit = http.get("/jobs/", params={"collab": alice.collab, "fields": "full"}).json()[0]
    assert explicit == full
    assert http.get("/jobs/", params={"fields": "tiny"}).status_code == 422


# --- on 100,000 jobs: which indexes a filtered page reads -----------------------------------

JOBS = 100_000


@pytest.fixture(scope="module")
def search_db(pg: PgCluster) -> Iterator[psycopg.Connection[Any]]:
    """A database of its own: 100,000 jobs, 60,000 of them in one collab ('big-lab')."""
    url = pg.create_database("nmpi_search_plans")
    migrate.upgrade(Settings(database_url=url))
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute(
            f"""
            INSERT INTO jobs (code, command, collab, user_id, status, hardware_platform, tags,
                              timestamp_submission)
            SELECT repeat('population.record(''spikes'')\n', 12),
                   'run.py --seed ' || n || ' {{system}}',
                   CASE WHEN n % 5 < 3 THEN 'big-lab' ELSE 'lab-' || n % 20 END,
                   'user-' || n % 50,
                   (ARRAY['finished', 'finished', 'finished', 'finished', 'finished',
                          'finished', 'error', 'running', 'submitted', 'removed'])[1 + n % 10],
                   'SpiNNaker', ARRAY['exp-' || n % 7, 'sweep-' || n % 1000],
                   timestamp '2026-01-01' + n * interval '1 minute'
            FROM generate_series(1, {JOBS}) n
            """
        )
        conn.execute("VACUUM ANALYZE jobs")
        yield conn


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def run_plan(
    conn: psycopg.Connection[Any], listing: JobListing, limit: int = 101
) -> tuple[dict[str, Any], list[int]]:
    """EXPLAIN ANALYZE of the service's page query with a custom plan, as a search runs it
    (job_lists.FORCE_CUSTOM_PLAN); and the page's ids."""
    query, parameters = job_lists.page_query(listing, limit=limit)
    compiled = query.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    assert compiled.positiontup is not None
    bound = compiled.construct_params(parameters)
    values = [bound[name] for name in compiled.positiontup]
    conn.execute("SET plan_cache_mode = force_custom_plan")
    conn.execute("DEALLOCATE ALL")
    conn.execute(f"PREPARE listing AS {compiled}")
    arguments = ", ".join(["%s"] * len(values))
    with psycopg.ClientCursor(conn) as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE listing({arguments})", values)
        row = cursor.fetchone()
        assert row is not None
        cursor.execute(f"EXECUTE listing({arguments})", values)
        page = [r[0] for r in cursor.fetchall()]
    return row[0][0], page


def indexes(plan: dict[str, Any]) -> set[str]:
    return {n["Index Name"] for n in nodes(plan["Plan"]) if "Index Name" in n}


def heap_rows(plan: dict[str, Any]) -> int:
    """Rows read from the table by the scans that find the page's ids (not the page's own)."""
    scans = [
        n
        for n in nodes(plan["Plan"])
        if n.get("Relation Name") == "jobs" and n.get("Index Name") != "pk_jobs"
    ]
    return sum(
        int((n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"])
        for n in scans
    )


@pytest.mark.parametrize("collab", ["big-lab", "lab-3"])
def test_a_rare_text_is_found_through_the_trigram_index(
    search_db: psycopg.Connection[Any], collab: str
) -> None:
    condition = job_lists.search_condition("SEED 4242")
    assert condition is not None
    plan, page = run_plan(search_db, JobListing("collab", [collab], conditions=[condition]))
    expected = search_db.execute(
        "SELECT id FROM jobs WHERE collab = %s AND status <> 'removed' "
        "AND command ILIKE '%%seed 4242%%' ORDER BY id DESC",
        (collab,),
    ).fetchall()
    assert page == [r[0] for r in expected]
    assert "ix_jobs_search_trgm" in indexes(plan), plan
    assert heap_rows(plan) < 200, f"{heap_rows(plan)} rows read"


def test_a_common_text_reads_only_the_newest_jobs(search_db: psycopg.Connection[Any]) -> None:
    condition = job_lists.search_condition("run.py")
    assert condition is not None
    plan, page = run_plan(search_db, JobListing("collab", ["big-lab"], conditions=[condition]))
    assert len(page) == 101
    assert indexes(plan) == {"ix_jobs_collab_status_id", "pk_jobs"}
    assert heap_rows(plan) <= len(job_lists.LISTED_STATUSES) * 101


def test_an_id_search_reads_one_entry(search_db: psycopg.Connection[Any]) -> None:
    row = search_db.execute(
        "SELECT id FROM jobs WHERE collab = 'big-lab' AND status = 'finished' "
        "ORDER BY id OFFSET 30000 LIMIT 1"
    ).fetchone()
    assert row is not None
    condition = job_lists.search_condition(str(row[0]))
    assert condition is not None
    plan, page = run_plan(search_db, JobListing("collab", ["big-lab"], conditions=[condition]))
    assert page == [row[0]]
    assert heap_rows(plan) <= 1


def test_a_date_range_reads_the_collab_index(search_db: psycopg.Connection[Any]) -> None:
    after = datetime(2026, 2, 1, tzinfo=UTC)  # the newest ~50,000 jobs are later
    listing = JobListing(
        "collab",
        ["lab-3"],
        conditions=[job_lists.J.timestamp_submission >= after],
    )
    plan, page = run_plan(search_db, listing)
    assert len(page) == 101
    assert "ix_jobs_collab_status_id" in indexes(plan)
    assert plan["Execution Time"] < 1000, plan["Execution Time"]
