"""Direct-access sessions (accounting) and the public statistics, over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from conftest import Account, run_admin
from nmpi_job_queue import models

ADMIN_COLLAB = "neuromorphic-platform-admin"
PLATFORMS = ["SpiNNaker", "BrainScaleS", "BrainScaleS-2", "Spikey", "Test", "Demo"]
Api = Callable[..., httpx.Client]
NewUser = Callable[..., Account]
NewProvider = Callable[[list[str]], str]


@pytest.fixture
def admin(api: Api, new_user: NewUser) -> httpx.Client:
    return api(new_user(roles={ADMIN_COLLAB: "editor"}).token)


def accepted_quota(
    owner: httpx.Client, admin: httpx.Client, collab: str, platform: str, units: str, limit: float
) -> str:
    """An accepted resource request of `collab` with one quota; returns the quota's URI."""
    reply = owner.post(
        "/projects/",
        json={"collab": collab, "title": "t", "abstract": "a", "status": "under review"},
    )
    assert reply.status_code == 201, reply.text
    project = reply.json()["id"]
    reply = admin.put(
        f"/projects/{project}", params={"as_admin": "true"}, json={"status": "accepted"}
    )
    assert reply.status_code == 200, reply.text
    reply = admin.post(
        f"/projects/{project}/quotas/",
        params={"as_admin": "true"},
        json={"platform": platform, "units": units, "limit": limit},
    )
    assert reply.status_code == 201, reply.text
    uri: str = reply.json()["resource_uri"]
    return uri


def start(provider: httpx.Client, account: Account, platform: str) -> dict[str, Any]:
    reply = provider.post(
        "/sessions/",
        json={
            "collab": account.collab,
            "user_id": account.username,
            "hardware_platform": platform,
            "hardware_config": {"boards": 1},
        },
    )
    assert reply.status_code == 201, reply.text
    result: dict[str, Any] = reply.json()
    return result


# --- sessions ---------------------------------------------------------------------------


def test_session_usage_is_charged_once(
    api: Api, new_user: NewUser, new_provider: NewProvider, admin: httpx.Client
) -> None:
    alice = new_user()
    owner = api(alice.token)
    quota_uri = accepted_quota(owner, admin, alice.collab, "SpiNNaker", "core-hours", 10)
    provider = api(api_key=new_provider(["SpiNNaker"]))
    session = start(provider, alice, "SpiNNaker")
    assert session["status"] == "running"
    assert session["resource_usage"] == {"value": 0, "units": "core-hours"}
    assert session["resource_uri"] == f"/sessions/{session['id']}"
    assert session["timestamp_end"] is None
    uri = session["resource_uri"]

    def usage() -> float:
        value: float = owner.get(quota_uri).json()["usage"]
        return value

    running = {"status": "running", "resource_usage": {"value": 2, "units": "core-hours"}}
    for _ in range(2):  # the usage sent is a total: repeating it charges nothing more
        reply = provider.put(uri, json=running)
        assert reply.status_code == 200, reply.text
        assert usage() == 2
    done = {"status": "finished", "resource_usage": {"value": 3.5, "units": "core-hours"}}
    reply = provider.put(uri, json=done)
    assert reply.status_code == 200
    ended = reply.json()["timestamp_end"]
    assert ended
    assert usage() == 3.5
    again = provider.put(uri, json=done).json()
    assert again["timestamp_end"] == ended  # set once
    assert again["resource_usage"] == {"value": 3.5, "units": "core-hours"}
    assert usage() == 3.5
    reply = provider.put(uri, json=running)
    assert reply.status_code == 409
    assert "finished session cannot become running" in reply.json()["detail"]
    reply = provider.put(
        uri, json={"status": "finished", "resource_usage": {"value": 4, "units": "hours"}}
    )
    assert reply.status_code == 400
    assert "core-hours" in reply.json()["detail"]
    assert usage() == 3.5
    assert owner.get(uri).json()["status"] == "finished"


def test_session_permissions_and_listing(
    api: Api, new_user: NewUser, new_provider: NewProvider
) -> None:
    alice = new_user()
    provider = api(api_key=new_provider(["BrainScaleS-2"]))
    other_provider = api(api_key=new_provider(["SpiNNaker"]))
    reply = other_provider.post(
        "/sessions/",
        json={"collab": alice.collab, "user_id": alice.username, "hardware_platform": "Demo"},
    )
    assert reply.status_code == 403
    assert "Demo" in reply.json()["detail"]
    ids = [start(provider, alice, "BrainScaleS-2")["id"] for _ in range(3)]
    uri = f"/sessions/{ids[0]}"
    owner = api(alice.token)
    viewer = api(new_user(roles={alice.collab: "viewer"}).token)
    stranger = api(new_user().token)
    assert owner.get(uri).status_code == 200
    assert viewer.get(uri).status_code == 200
    assert stranger.get(uri).status_code == 404
    assert other_provider.get(uri).status_code == 404
    usage = {"status": "running", "resource_usage": {"value": 1, "units": "chip-hours"}}
    assert other_provider.put(uri, json=usage).status_code == 404
    reply = owner.put(uri, json=usage)
    assert reply.status_code == 403
    assert "x-api-key" in reply.json()["detail"]
    assert owner.post("/sessions/", json={}).status_code in (403, 422)
    # Listing: a user's own sessions, or a collab's; newest first with paging.
    mine = owner.get("/sessions/").json()
    assert [s["id"] for s in mine] == ids[::-1]
    page = owner.get("/sessions/", params={"size": 2, "from_index": 1}).json()
    assert [s["id"] for s in page] == ids[::-1][1:3]
    assert viewer.get("/sessions/").json() == []
    by_collab = viewer.get("/sessions/", params={"collab": alice.collab}).json()
    assert [s["id"] for s in by_collab] == ids[::-1]
    reply = stranger.get("/sessions/", params={"collab": alice.collab})
    assert reply.status_code == 403
    assert alice.collab in reply.json()["detail"]
    listed = provider.get("/sessions/", params={"collab": alice.collab, "size": 100}).json()
    assert {s["id"] for s in listed} == set(ids)
    assert other_provider.get("/sessions/", params={"collab": alice.collab}).json() == []
    provider.put(uri, json={**usage, "status": "error"})
    errors = owner.get("/sessions/", params={"status": "error"}).json()
    assert [s["id"] for s in errors] == [ids[0]]


def test_session_needs_quota(
    api: Api, new_user: NewUser, new_provider: NewProvider, admin: httpx.Client
) -> None:
    alice = new_user()
    owner = api(alice.token)
    provider = api(api_key=new_provider(["BrainScaleS"]))
    quota_uri = accepted_quota(owner, admin, alice.collab, "BrainScaleS", "wafer-hours", 1)
    reply = admin.put(quota_uri, params={"as_admin": "true"}, json={"usage": 1})
    assert reply.status_code == 200
    reply = provider.post(
        "/sessions/",
        json={
            "collab": alice.collab,
            "user_id": alice.username,
            "hardware_platform": "BrainScaleS",
        },
    )
    assert reply.status_code == 403
    assert "no quota left" in reply.json()["detail"]
    # A collab's first use of a platform gets a small test quota, as for jobs.
    bob = new_user()
    start(provider, bob, "BrainScaleS")
    accepted = api(bob.token).get("/projects/", params={"collab": bob.collab}).json()
    assert [q["platform"] for p in accepted for q in p["quotas"]] == ["BrainScaleS"]


# --- statistics -------------------------------------------------------------------------


def add_jobs(database_url: str, jobs: list[dict[str, Any]]) -> None:
    """Insert jobs directly, with the timestamps the statistics are computed from."""

    async def work(session: Any) -> None:
        for job in jobs:
            session.add(
                models.Job(
                    code="pass",
                    collab="collab-statistics",
                    user_id="statistician",
                    **{"status": "submitted", **job},
                )
            )

    run_admin(database_url, work)


def by_platform(rows: list[dict[str, Any]], key: str = "platform") -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def submit(client: httpx.Client, collab: str, platform: str) -> dict[str, Any]:
    reply = client.post(
        "/jobs/", json={"code": "pass", "collab": collab, "hardware_platform": platform}
    )
    assert reply.status_code == 201, reply.text
    result: dict[str, Any] = reply.json()
    return result


def test_statistics_are_public_and_cover_every_platform(api: Api) -> None:
    anonymous = api()
    for path in ("queue-length", "job-duration", "resource-usage"):
        reply = anonymous.get(f"/statistics/{path}")
        assert reply.status_code == 200, reply.text
        names = [row.get("queue_name", row.get("platform")) for row in reply.json()]
        assert names[: len(PLATFORMS)] == PLATFORMS
    reply = anonymous.get(
        "/statistics/job-count", params={"start": "2020-01-01", "end": "2020-01-01"}
    )
    assert reply.status_code == 200
    assert list(reply.json()[0]["count"])[: len(PLATFORMS)] == PLATFORMS


def test_queue_length(api: Api, new_user: NewUser, new_provider: NewProvider) -> None:
    statistics = api()

    def spikey() -> dict[str, Any]:
        reply = statistics.get("/statistics/queue-length")
        assert reply.status_code == 200
        return by_platform(reply.json(), "queue_name")["Spikey"]

    before = spikey()
    alice = new_user()
    for _ in range(2):
        submit(api(alice.token), alice.collab, "Spikey")
    after = spikey()
    assert after["submitted"] == before["submitted"] + 2
    assert after["running"] == before["running"]
    provider = api(api_key=new_provider(["Spikey"]))
    claimed = provider.get("/jobs/next/Spikey").json()
    assert provider.put(f"/jobs/{claimed['id']}", json={"status": "running"}).status_code == 200
    now = spikey()
    assert now["submitted"] == before["submitted"] + 1
    assert now["running"] == before["running"] + 1


def test_job_count_per_interval(database_url: str, api: Api, new_user: NewUser) -> None:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text)

    add_jobs(
        database_url,
        [
            {"hardware_platform": "SpiNNaker", "timestamp_submission": at("1995-03-01T00:00Z")},
            {"hardware_platform": "SpiNNaker", "timestamp_submission": at("1995-03-01T10:00Z")},
            # 00:30 in UTC+1 is still 7 March in UTC: the first interval.
            {"hardware_platform": "Demo", "timestamp_submission": at("1995-03-08T00:30+01:00")},
            {"hardware_platform": "SpiNNaker", "timestamp_submission": at("1995-03-08T00:00Z")},
            {"hardware_platform": "BrainScaleS", "timestamp_submission": at("1995-03-20T23:59Z")},
            # outside the range
            {"hardware_platform": "SpiNNaker", "timestamp_submission": at("1995-02-28T23:59Z")},
            {"hardware_platform": "SpiNNaker", "timestamp_submission": at("1995-03-21T00:00Z")},
        ],
    )
    statistics = api()
    reply = statistics.get(
        "/statistics/job-count", params={"start": "1995-03-01", "end": "1995-03-20", "interval": 7}
    )
    assert reply.status_code == 200, reply.text
    zero = dict.fromkeys(PLATFORMS, 0)
    assert reply.json() == [
        {
            "start": "1995-03-01",
            "end": "1995-03-07",
            "count": {**zero, "SpiNNaker": 2, "Demo": 1},
        },
        {"start": "1995-03-08", "end": "1995-03-14", "count": {**zero, "SpiNNaker": 1}},
        {"start": "1995-03-15", "end": "1995-03-20", "count": {**zero, "BrainScaleS": 1}},
    ]
    # Jobs submitted today through the API are counted in the current interval.
    today = datetime.now(UTC).date()
    week = {"start": (today - timedelta(days=6)).isoformat(), "end": today.isoformat()}

    def tests_this_week() -> int:
        rows = statistics.get("/statistics/job-count", params=week).json()
        assert len(rows) == 1
        count: int = rows[0]["count"]["Test"]
        return count

    before = tests_this_week()
    alice = new_user()
    for _ in range(3):
        submit(api(alice.token), alice.collab, "Test")
    assert tests_this_week() == before + 3


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"start": "2024-02-01", "end": "2024-01-01"}, 400, "must not be before start"),
        ({"start": "2000-01-01", "end": "2024-01-01"}, 400, "longer than 10 years"),
        ({"start": "2024-01-01", "end": "2024-02-01", "interval": 0}, 422, "greater than"),
        ({"start": "2024-01-01", "end": "2024-02-01", "interval": 367}, 422, "less than"),
        ({"end": "2024-02-01"}, 422, "start"),
        ({"start": "2024-13-01", "end": "2024-02-01"}, 422, "date"),
    ],
)
def test_job_count_validation(api: Api, params: dict[str, Any], code: int, message: str) -> None:
    reply = api().get("/statistics/job-count", params=params)
    assert reply.status_code == code
    assert message in str(reply.json()["detail"])


def test_job_count_longest_allowed_span(api: Api) -> None:
    reply = api().get(
        "/statistics/job-count",
        params={"start": "2010-01-01", "end": "2020-01-01", "interval": 366},
    )
    assert reply.status_code == 200, reply.text
    rows = reply.json()
    assert rows[0]["start"] == "2010-01-01"
    assert rows[-1]["end"] == "2020-01-01"
    assert len(rows) == 10


def test_job_duration(
    database_url: str, api: Api, new_user: NewUser, new_provider: NewProvider
) -> None:
    base = datetime(1996, 5, 1, 12, tzinfo=UTC)
    finished = [
        {
            "hardware_platform": "SpiNNaker",
            "status": "finished",
            "timestamp_submission": base,
            "timestamp_completion": base + timedelta(seconds=seconds),
        }
        for seconds in (100, 10, 40, 20, 30)
    ]
    failed = {
        "hardware_platform": "SpiNNaker",
        "status": "error",
        "timestamp_submission": base,
        "timestamp_completion": base + timedelta(seconds=5),
    }
    # Times in another zone measure the same durations.
    plus2 = timezone(timedelta(hours=2))
    other = {
        "hardware_platform": "BrainScaleS",
        "status": "finished",
        "timestamp_submission": datetime(1996, 5, 2, 10, tzinfo=plus2),
        "timestamp_completion": datetime(1996, 5, 2, 9, 1, tzinfo=UTC),
    }
    add_jobs(database_url, [*finished, failed, other])
    statistics = api()
    window = {"start": "1996-05-01", "end": "1996-05-31"}
    rows = by_platform(statistics.get("/statistics/job-duration", params=window).json())
    assert rows["SpiNNaker"] == {
        "platform": "SpiNNaker",
        "status": "finished",
        "count": 5,
        "median_seconds": 30.0,
        "p90_seconds": pytest.approx(76.0),  # 40 + 0.6 * (100 - 40)
    }
    assert rows["BrainScaleS"]["count"] == 1
    assert rows["BrainScaleS"]["median_seconds"] == 3660.0
    assert rows["Demo"] == {
        "platform": "Demo",
        "status": "finished",
        "count": 0,
        "median_seconds": None,
        "p90_seconds": None,
    }
    errors = by_platform(
        statistics.get("/statistics/job-duration", params={**window, "status": "error"}).json()
    )
    assert errors["SpiNNaker"]["count"] == 1
    assert errors["SpiNNaker"]["median_seconds"] == 5.0
    assert (
        statistics.get("/statistics/job-duration", params={"status": "running"}).status_code == 422
    )
    reply = statistics.get(
        "/statistics/job-duration", params={"start": "1996-06-01", "end": "1996-05-01"}
    )
    assert reply.status_code == 400
    # A job finished through the API today is counted.

    def demo_count() -> int:
        rows = statistics.get("/statistics/job-duration").json()
        count: int = by_platform(rows)["Demo"]["count"]
        return count

    before = demo_count()
    alice = new_user()
    job = submit(api(alice.token), alice.collab, "Demo")
    provider = api(api_key=new_provider(["Demo"]))
    assert provider.put(f"/jobs/{job['id']}", json={"status": "finished"}).status_code == 200
    assert demo_count() == before + 1


def test_resource_usage(
    database_url: str, api: Api, new_user: NewUser, new_provider: NewProvider
) -> None:
    day = datetime(1997, 7, 14, 8, tzinfo=UTC)
    add_jobs(
        database_url,
        [
            {"hardware_platform": "SpiNNaker", "resource_usage": 1.5, "timestamp_submission": day},
            {"hardware_platform": "SpiNNaker", "resource_usage": 2.0, "timestamp_submission": day},
            {
                "hardware_platform": "BrainScaleS-2",
                "resource_usage": 0.25,
                "timestamp_submission": day,
            },
            {"hardware_platform": "Test", "resource_usage": None, "timestamp_submission": day},
        ],
    )
    statistics = api()
    rows = by_platform(
        statistics.get(
            "/statistics/resource-usage", params={"start": "1997-07-14", "end": "1997-07-14"}
        ).json()
    )
    assert rows["SpiNNaker"] == {"platform": "SpiNNaker", "units": "core-hours", "value": 3.5}
    assert rows["BrainScaleS-2"] == {
        "platform": "BrainScaleS-2",
        "units": "chip-hours",
        "value": 0.25,
    }
    assert rows["Test"] == {"platform": "Test", "units": "hours", "value": 0}
    assert rows["BrainScaleS"]["units"] == "wafer-hours"
    # Usage reported by a provider today is added to the totals.

    def demo_total() -> float:
        value: float = by_platform(statistics.get("/statistics/resource-usage").json())["Demo"][
            "value"
        ]
        return value

    before = demo_total()
    alice = new_user()
    job = submit(api(alice.token), alice.collab, "Demo")
    provider = api(api_key=new_provider(["Demo"]))
    reply = provider.put(
        f"/jobs/{job['id']}",
        json={"status": "finished", "resource_usage": {"value": 0.75, "units": "hours"}},
    )
    assert reply.status_code == 200, reply.text
    assert demo_total() == pytest.approx(before + 0.75)
