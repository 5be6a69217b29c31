"""Lists return all that the unmodified nmpi client asks for, within documented bounds: a default
page of 1000, at most 10,000 per page, and a `Link: <...>; rel="next"` header when more follow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import nmpi
import nmpi.nmpi_user
import psycopg
from conftest import Account, run_admin
from nmpi_job_queue import admin
from nmpi_job_queue.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

SCRIPT = "import pyNN.spiNNaker as sim\nsim.setup()\nsim.run(10.0)\nsim.end()\n"
Api = Callable[..., httpx.Client]
Params = list[tuple[str, str | int | float | bool | None]]


def submit(client: httpx.Client, collab: str, platform: str = "BrainScaleS") -> int:
    reply = client.post(
        "/jobs/", json={"code": SCRIPT, "collab": collab, "hardware_platform": platform}
    )
    assert reply.status_code == 201, reply.text
    job_id: int = reply.json()["id"]
    return job_id


def follow(client: httpx.Client, url: str, params: Any = None) -> tuple[list[Any], int]:
    """Every item of a list, following its Link headers; and how many requests it took."""
    items: list[Any] = []
    requests = 0
    reply = client.get(url, params=params)
    while True:
        requests += 1
        assert reply.status_code == 200, reply.text
        items += reply.json()
        if "next" not in reply.links:
            return items, requests
        reply = client.get(reply.links["next"]["url"])


def test_queued_jobs_are_all_there(
    client_factory: Callable[[Account], nmpi.Client], new_user: Callable[..., Account], api: Api
) -> None:
    """The client's queued_jobs() sends no size: it saw 10 of 15 jobs with the reference's 10."""
    alice = new_user()
    http = api(alice.token)
    ids = [submit(http, alice.collab) for _ in range(15)]  # no provider runs BrainScaleS here
    queued = client_factory(alice).queued_jobs()
    assert queued == [f"/jobs/{i}" for i in reversed(ids)]  # newest first
    reply = http.get("/jobs/", params=[("status", "submitted"), ("status", "running")])
    assert "link" not in reply.headers  # nothing more to get


def test_quotas_are_all_there(
    client_factory: Callable[[Account], nmpi.Client],
    new_user: Callable[..., Account],
    database_url: str,
) -> None:
    """quotas() reads the accepted resource requests with no size: it saw 10 of 11 quotas."""
    alice = new_user()

    async def grant(session: Any) -> None:
        for n in range(11):
            project = await admin.create_project(session, alice.collab, alice.username, f"P{n}")
            await admin.add_quota(session, project, "SpiNNaker", 100.0 + n)

    run_admin(database_url, grant)
    client = client_factory(alice)
    quotas = client.quotas(alice.collab)
    assert sorted(q["limit"] for q in quotas) == [100.0 + n for n in range(11)]
    assert len(client.resource_requests(alice.collab)) == 11


def add_finished_jobs(database_url: str, collab: str, user: str, count: int) -> None:
    """`count` finished jobs, submitted long ago (outside what the statistics tests count)."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO jobs (code, collab, user_id, status, hardware_platform, "
            "timestamp_submission) SELECT 'run()', %s, %s, 'finished', 'Test', "
            "timestamp '2001-01-01' + n * interval '1 minute' FROM generate_series(1, %s) n",
            (collab, user, count),
        )


def test_completed_jobs_up_to_the_maximum_then_link(
    client_factory: Callable[[Account], nmpi.Client],
    new_user: Callable[..., Account],
    api: Api,
    database_url: str,
) -> None:
    """completed_jobs() asks for size=100000: it gets the maximum page, and the reply says
    where the rest is (the client cannot follow it, but anything else can)."""
    alice = new_user()
    add_finished_jobs(database_url, alice.collab, alice.username, MAX_PAGE_SIZE + 5)
    completed = client_factory(alice).completed_jobs(alice.collab)
    assert len(completed) == MAX_PAGE_SIZE
    http = api(alice.token)
    params: Params = [("status", "finished"), ("status", "error"), ("collab", alice.collab)]
    reply = http.get("/jobs/", params=[*params, ("size", "100000")])
    assert len(reply.json()) == MAX_PAGE_SIZE
    rest = http.get(reply.links["next"]["url"])
    assert len(rest.json()) == 5
    assert "next" not in rest.links
    everything = {j["resource_uri"] for j in reply.json() + rest.json()}
    assert len(everything) == MAX_PAGE_SIZE + 5
    # Without size, the default page.
    assert len(http.get("/jobs/", params=params).json()) == DEFAULT_PAGE_SIZE


def test_link_pages_through_everything_in_order(new_user: Callable[..., Account], api: Api) -> None:
    alice = new_user()
    http = api(alice.token)
    ids = [submit(http, alice.collab, "SpiNNaker") for _ in range(7)]
    params: Params = [("collab", alice.collab), ("size", "3"), ("status", "submitted")]
    jobs, requests = follow(http, "/jobs/", params)
    assert [j["id"] for j in jobs] == ids[::-1]
    assert requests == 3
    twice = http.get("/jobs/", params=[*params, ("collab", alice.collab), ("size", "10")])
    assert [j["id"] for j in twice.json()] == ids[::-1]  # a collab given twice: no job twice
    first = http.get("/jobs/", params=params)
    url = first.links["next"]["url"]
    assert url.startswith("/jobs/?")  # relative to the request's URL (RFC 8288)
    nxt = httpx.URL(url).params
    assert nxt.get_list("status") == ["submitted"]  # the filters are kept
    assert nxt["before_id"] == str(ids[-3])  # keyset: after the last job shown
    # A job submitted meanwhile neither shifts nor repeats the next page (offset would).
    newer = submit(http, alice.collab, "SpiNNaker")
    assert [j["id"] for j in http.get(url).json()] == ids[::-1][3:6]
    # from_index (the reference's clients) still works, and its Link continues by keyset.
    offset = http.get("/jobs/", params=[*params, ("from_index", "1")])
    assert [j["id"] for j in offset.json()] == [ids[-1], ids[-2], ids[-3]]
    assert "from_index" not in offset.links["next"]["url"]
    assert [
        j["id"] for j in http.get("/jobs/", params={"collab": alice.collab, "size": 1}).json()
    ] == [newer]


def test_projects_and_sessions_page_with_link(
    new_user: Callable[..., Account],
    new_provider: Callable[[list[str]], str],
    api: Api,
) -> None:
    alice = new_user()
    http = api(alice.token)
    made = {
        http.post(
            "/projects/", json={"collab": alice.collab, "title": f"R{n}", "abstract": "x"}
        ).json()["id"]
        for n in range(5)
    }
    projects, requests = follow(http, "/projects/", {"collab": alice.collab, "size": 2})
    assert {p["id"] for p in projects} == made
    assert requests == 3
    provider = api(api_key=new_provider(["BrainScaleS-2"]))
    body = {"collab": alice.collab, "user_id": alice.username, "hardware_platform": "BrainScaleS-2"}
    started = [provider.post("/sessions/", json=body).json()["id"] for _ in range(5)]
    sessions, requests = follow(http, "/sessions/", {"collab": alice.collab, "size": 2})
    assert [s["id"] for s in sessions] == started[::-1]
    assert requests == 3
    mine = http.get("/sessions/", params={"size": 5})
    assert len(mine.json()) == 5
    assert "link" not in mine.headers  # exactly the last page: no empty page to ask for


def test_paging_parameters_are_checked(new_user: Callable[..., Account], api: Api) -> None:
    http = api(new_user().token)
    for params in ({"size": 0}, {"before_id": 0}, {"before_id": "x"}, {"from_index": -1}):
        assert http.get("/jobs/", params=params).status_code == 422
    for path in ("/jobs/", "/sessions/"):
        assert http.get(path, params={"before_id": 2**63 - 1}).json() == []
    document = http.get("/openapi.json").json()
    for path in ("/jobs/", "/projects/", "/sessions/"):
        assert "Link" in document["paths"][path]["get"]["responses"]["200"]["headers"]
