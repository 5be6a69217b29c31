"""The provider protocol's client: claim, confirm, log PATCH, fencing (409), retries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nmpi
import pytest
from emulator_testkit import clear_queue, start_server, stop_server
from nmpi_emulator.queue import (
    Backoff,
    ClaimLostError,
    QueueClient,
    QueueRequestError,
    QueueUnavailableError,
)
from nmpi_lab.processes import free_port

PLATFORM = "Test"  # charged in hours; no emulator serves it, so the tests own its queue
SCRIPT = "print('hello')\n"


@pytest.fixture
def site_key(new_provider: Callable[[list[str]], str], server: str) -> str:
    key = new_provider([PLATFORM])
    clear_queue(server, key, PLATFORM)
    return key


@pytest.fixture
def user_client(
    new_user: Callable[..., Any], client_factory: Callable[[Any], nmpi.Client]
) -> tuple[Any, nmpi.Client]:
    account = new_user()
    return account, client_factory(account)


def submit(user_client: tuple[Any, nmpi.Client], platform: str = PLATFORM) -> int:
    account, client = user_client
    uri = client.submit_job(source=SCRIPT, platform=platform, collab_id=account.collab)
    return int(str(uri).rstrip("/").rsplit("/", 1)[-1])


def test_claim_confirm_log_and_report(
    server: str, site_key: str, user_client: tuple[Any, nmpi.Client]
) -> None:
    job_id = submit(user_client)
    with QueueClient(server, site_key, timeout=10) as queue:
        claimed = queue.next_job(PLATFORM)
        assert claimed is not None
        assert claimed.id == job_id
        assert claimed.claim  # the claim id, sent back on every write
        assert claimed.job["status"] == "submitted"
        wait = claimed.queue_wait_seconds()
        assert wait is not None
        assert 0 <= wait < 60
        assert queue.next_job(PLATFORM) is None  # handed out once

        assert (
            queue.update(job_id, claimed.claim, {"status": "running"}, deadline=10)["status"]
            == "running"
        )
        assert queue.append_log(job_id, claimed.claim, "line 1\n", deadline=5)
        assert queue.append_log(job_id, claimed.claim, "line 2 ü\n", deadline=5)
        _, client = user_client
        assert client.get_job(job_id, with_log=True)["log"] == "line 1\nline 2 ü\n"

        body = {
            "status": "finished",
            "log": "the whole log\n",
            "resource_usage": {"value": 0.5, "units": "hours"},
        }
        done = queue.update(job_id, claimed.claim, body, deadline=10)
        assert done["status"] == "finished"
        assert done["resource_usage"] == {"value": 0.5, "units": "hours"}
        with pytest.raises(QueueRequestError, match="units must be 'hours'") as refused:
            queue.update(
                job_id,
                claimed.claim,
                {"resource_usage": {"value": 1, "units": "core-hours"}},
                deadline=10,
            )
        assert refused.value.status == 400


def test_platform_not_served_is_a_clear_error(server: str, site_key: str) -> None:
    with QueueClient(server, site_key) as queue, pytest.raises(QueueRequestError) as refused:
        queue.next_job("SpiNNaker")
    assert refused.value.status == 403
    assert "does not serve the SpiNNaker queue" in str(refused.value)


@pytest.fixture
def short_lease_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    process, base = start_server(database_url, tmp_path / "lease.log", NMPI_CLAIM_LEASE_SECONDS="1")
    yield base
    stop_server(process)


def test_claim_taken_over_is_lost_and_never_retried(
    short_lease_server: str, site_key: str, user_client: tuple[Any, nmpi.Client]
) -> None:
    job_id = submit(user_client)
    requests: list[str] = []

    def count(request: httpx.Request) -> None:
        requests.append(request.method)

    with (
        QueueClient(short_lease_server, site_key) as old,
        QueueClient(short_lease_server, site_key) as new,
    ):
        old._http.event_hooks["request"] = [count]
        first = old.next_job(PLATFORM)
        assert first is not None
        assert first.id == job_id
        time.sleep(1.3)  # the lease runs out unconfirmed
        second = new.next_job(PLATFORM)
        assert second is not None
        assert second.id == job_id
        assert second.claim != first.claim

        requests.clear()
        with pytest.raises(ClaimLostError, match="409"):
            old.update(job_id, first.claim, {"status": "running"}, deadline=30)
        with pytest.raises(ClaimLostError):
            old.append_log(job_id, first.claim, "not mine\n", deadline=30)
        assert requests == ["PUT", "PATCH"]  # one attempt each

        assert (
            new.update(job_id, second.claim, {"status": "finished"}, deadline=10)["status"]
            == "finished"
        )


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_retries_until_the_deadline_against_a_closed_port() -> None:
    fake = FakeTime()
    url = f"http://127.0.0.1:{free_port()}"
    with QueueClient(
        url, "key", backoff_base=0.5, backoff_cap=4, clock=fake.clock, sleep=fake.sleep
    ) as queue:
        with pytest.raises(QueueUnavailableError, match="gave up after"):
            queue.update(1, "c", {"status": "running"}, deadline=30)
        assert len(fake.sleeps) >= 5
        assert all(0 <= s <= 4 for s in fake.sleeps)
        assert sum(fake.sleeps) <= 30
        assert not queue.append_log(1, "c", "x", deadline=2)
        with pytest.raises(QueueUnavailableError):
            queue.next_job(PLATFORM)

    # And on the real clock the deadline holds.
    with QueueClient(url, "key", backoff_base=0.05, backoff_cap=0.2) as queue:
        started = time.monotonic()
        with pytest.raises(QueueUnavailableError):
            queue.update(1, "c", {}, deadline=1.0)
        assert time.monotonic() - started < 3.0  # not the unbounded retrying it would be


def scripted(replies: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return replies.pop(0)

    return httpx.MockTransport(handle)


def test_retries_5xx_and_429_then_succeeds_sending_the_claim() -> None:
    fake = FakeTime()
    seen: list[httpx.Request] = []
    replies = [
        httpx.Response(503, json={"detail": "failing over"}),
        httpx.Response(429, headers={"Retry-After": "3"}, json={"detail": "slow down"}),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, json={"id": 7, "status": "running"}),
    ]
    with QueueClient(
        "https://queue.example",
        "secret",
        clock=fake.clock,
        sleep=fake.sleep,
        backoff_base=0.5,
        backoff_cap=8,
        transport=scripted(replies, seen),
    ) as queue:
        assert queue.update(7, "claim-7", {"status": "running"}, deadline=60)["id"] == 7
    assert len(seen) == 4
    assert fake.sleeps[1] >= 3  # Retry-After is honoured
    assert all(r.headers["X-NMPI-Claim"] == "claim-7" for r in seen)
    assert all(r.headers["x-api-key"] == "secret" for r in seen)


def test_client_errors_are_not_retried() -> None:
    seen: list[httpx.Request] = []
    replies = [httpx.Response(422, json={"detail": "bad claim"})]
    with (
        QueueClient("https://queue.example", "k", transport=scripted(replies, seen)) as queue,
        pytest.raises(QueueRequestError, match="422 bad claim"),
    ):
        queue.update(1, "x", {}, deadline=60)
    assert len(seen) == 1


def test_log_patch_sends_text() -> None:
    seen: list[httpx.Request] = []
    replies = [httpx.Response(500), httpx.Response(200, text="a\n")]
    fake = FakeTime()
    with QueueClient(
        "https://queue.example",
        "k",
        clock=fake.clock,
        sleep=fake.sleep,
        backoff_base=0.1,
        transport=scripted(replies, seen),
    ) as queue:
        assert queue.append_log(3, None, "a\n", deadline=5)
    assert [r.method for r in seen] == ["PATCH", "PATCH"]
    assert seen[-1].url.path == "/jobs/3/log"
    assert seen[-1].headers["Content-Type"].startswith("text/plain")
    assert "X-NMPI-Claim" not in seen[-1].headers
    assert seen[-1].content == b"a\n"


def test_backoff_is_exponential_capped_and_resets() -> None:
    backoff = Backoff(1, 10, rand=lambda: 1.0)
    assert [backoff.next() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    backoff.reset()
    assert backoff.next() == 1
    jittered = Backoff(1, 10, rand=lambda: 0.25)
    assert [jittered.next() for _ in range(3)] == [0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match="base"):
        Backoff(0, 1)
