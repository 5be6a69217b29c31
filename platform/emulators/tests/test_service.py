"""The site's workers: each job taken once, idle and unreachable back-off, drain, metrics."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nmpi
import pytest
from emulator_testkit import PLATFORM, TcpProxy, clear_queue, make_config, submit
from nmpi_emulator.queue import ClaimedJob, QueueClient
from nmpi_emulator.runner import RunnerConfig, run_job
from nmpi_emulator.service import EmulatorService
from prometheus_client import REGISTRY


@pytest.fixture
def key(server: str, new_provider: Callable[[list[str]], str]) -> str:
    key = new_provider([PLATFORM])
    clear_queue(server, key, PLATFORM)
    return key


@pytest.fixture
def user(
    new_user: Callable[..., Any], client_factory: Callable[[Any], nmpi.Client]
) -> tuple[Any, nmpi.Client]:
    account = new_user()
    return account, client_factory(account)


@pytest.fixture
def queue(server: str, key: str) -> Iterator[QueueClient]:
    with QueueClient(server, key, timeout=10) as client:
        yield client


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"platform": PLATFORM, **labels}) or 0.0


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    ends = time.monotonic() + timeout
    while not check():
        if time.monotonic() > ends:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_four_workers_take_eight_jobs_exactly_once(
    queue: QueueClient, user: tuple[Any, nmpi.Client], tmp_path: Path
) -> None:
    taken: list[int] = []
    lock = threading.Lock()

    def counting(
        client: QueueClient, claimed: ClaimedJob, config: RunnerConfig, stop: threading.Event
    ) -> str:
        with lock:
            taken.append(claimed.id)
        return run_job(client, claimed, config, stop)

    finished_before = metric("nmpi_emulator_jobs_total", outcome="finished")
    waits_before = metric("nmpi_emulator_queue_wait_seconds_count")
    ids = [submit(user, f"print('marker-{i}')\n") for i in range(8)]
    service = EmulatorService(
        queue, make_config(tmp_path), workers=4, idle_base=0.05, idle_cap=0.2, run=counting
    )
    service.start()
    try:
        wait_for(lambda: len(taken) == 8, 60, "8 jobs taken")
        wait_for(lambda: service.busy == 0, 60, "the jobs to end")
        assert metric("nmpi_emulator_workers") == 4
        time.sleep(0.5)  # a few more polls: nothing more to take
    finally:
        assert service.drain(timeout=10)
    assert sorted(taken) == sorted(ids)
    for i, job_id in enumerate(ids):
        job = user[1].get_job(job_id, with_log=True)
        assert job["status"] == "finished"
        assert job["log"].count(f"marker-{i}") == 1
    assert metric("nmpi_emulator_jobs_total", outcome="finished") - finished_before == 8
    assert metric("nmpi_emulator_queue_wait_seconds_count") - waits_before == 8
    assert metric("nmpi_emulator_workers_busy") == 0
    assert metric("nmpi_emulator_up") == 0
    assert metric("nmpi_emulator_info", version="0.1.0") == 1


def test_drain_stops_a_job_past_the_timeout_and_reports_it(
    queue: QueueClient, user: tuple[Any, nmpi.Client], tmp_path: Path
) -> None:
    job_id = submit(user, "import time\nprint('long job', flush=True)\ntime.sleep(120)\n")
    service = EmulatorService(queue, make_config(tmp_path), workers=1, idle_base=0.05)
    service.start()
    wait_for(lambda: user[1].get_job(job_id)["status"] == "running", 30, "the job to run")
    started = time.monotonic()
    assert service.drain(timeout=0.5)
    assert time.monotonic() - started < 10
    job = user[1].get_job(job_id, with_log=True)
    assert job["status"] == "error"
    assert "the hardware site shut down while the job ran" in job["log"]
    assert "long job" in job["log"]
    assert not (tmp_path / f"{job_id}.claim.json").exists()


def test_unreachable_queue_is_logged_once_per_change_and_backed_off(
    server: str, key: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = TcpProxy(server)  # not started: the queue is away
    runs: list[int] = []

    def never(*args: Any) -> str:
        runs.append(1)
        return "finished"

    errors_before = metric("nmpi_emulator_poll_errors_total")
    with QueueClient(proxy.url, key, timeout=2) as client:
        service = EmulatorService(
            client, make_config(tmp_path), workers=2, idle_base=0.02, idle_cap=0.05, run=never
        )
        caplog.set_level(logging.INFO, logger="nmpi_emulator")
        service.start()
        try:
            time.sleep(0.6)
            proxy.start()
            time.sleep(0.4)
        finally:
            assert service.drain(timeout=5)
            proxy.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "nmpi_emulator.service"]
    assert messages.count("queue unreachable: backing off") == 1
    assert messages.count("queue reachable") == 1
    assert metric("nmpi_emulator_poll_errors_total") - errors_before >= 4
    assert runs == []


def test_start_runs_interrupted_jobs_first(queue: QueueClient, tmp_path: Path) -> None:
    job = {"id": 999_999, "hardware_platform": PLATFORM, "code": "print(1)"}
    record = {"job": job, "claim": "c", "runs": 1, "started": 0}
    (tmp_path / "999999.claim.json").write_text(json.dumps(record))
    seen: list[tuple[int, str | None]] = []

    def remember(
        client: QueueClient, claimed: ClaimedJob, config: RunnerConfig, stop: threading.Event
    ) -> str:
        seen.append((claimed.id, claimed.claim))
        return "finished"

    service = EmulatorService(
        queue, make_config(tmp_path), workers=1, idle_base=0.05, idle_cap=0.1, run=remember
    )
    service.start()
    wait_for(lambda: bool(seen), 10, "the interrupted job")
    assert service.drain(timeout=5)
    assert seen == [(999_999, "c")]
