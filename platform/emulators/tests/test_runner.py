"""One job end to end: a real job-queue server, the unmodified nmpi client submitting, run_job
claiming, running the script in the sandbox (bwrap) and reporting."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nmpi
import pytest
from emulator_testkit import (
    PLATFORM,
    TcpProxy,
    clear_queue,
    make_config,
    run_admin,
    submit,
)
from nmpi_emulator import runner
from nmpi_emulator.queue import ClaimedJob, ClaimLostError, QueueClient
from nmpi_emulator.runner import interrupted_jobs, run_job
from nmpi_emulator.workspace import QueueSource
from nmpi_job_queue.domain import quotas

PYNN_SCRIPT = """\
import pyNN.spiNNaker as sim
print("hello from the job", flush=True)
sim.setup(timestep=1.0)
cells = sim.Population(20, sim.IF_curr_exp(i_offset=1.0), label="cells")
cells.record("spikes")
sim.run(200.0)
spikes = cells.get_data().segments[0].spiketrains
with open("spikes.txt", "w") as out:
    out.write(str(sum(len(s) for s in spikes)))
print("spikes", sum(len(s) for s in spikes))
sim.end()
"""


@pytest.fixture
def site(server: str, new_provider: Callable[[list[str]], str]) -> Iterator[QueueClient]:
    key = new_provider([PLATFORM])
    clear_queue(server, key, PLATFORM)
    with QueueClient(server, key, timeout=10) as client:
        yield client


@pytest.fixture
def user(
    new_user: Callable[..., Any], client_factory: Callable[[Any], nmpi.Client]
) -> tuple[Any, nmpi.Client]:
    account = new_user()
    return account, client_factory(account)


def claim(site: QueueClient, job_id: int) -> ClaimedJob:
    claimed = site.next_job(PLATFORM)
    assert claimed is not None
    assert claimed.id == job_id
    return claimed


def test_pynn_script_finishes_with_log_outputs_usage_and_charge(
    site: QueueClient, user: tuple[Any, nmpi.Client], tmp_path: Path, database_url: str
) -> None:
    account, client = user
    job_id = submit(user, PYNN_SCRIPT)
    claimed = claim(site, job_id)
    config = make_config(tmp_path / "work")
    result: list[str] = []
    worker = threading.Thread(
        target=lambda: result.append(run_job(site, claimed, config, threading.Event()))
    )
    worker.start()
    # The log streams while the job runs.
    streamed = False
    while worker.is_alive() and not streamed:
        job = client.get_job(job_id, with_log=True)
        streamed = job["status"] == "running" and "hello from the job" in (job["log"] or "")
        time.sleep(0.2)
    worker.join(120)
    assert result == ["finished"]
    assert streamed

    job = client.get_job(job_id, with_log=True)
    assert job["status"] == "finished", job["log"]
    assert "hello from the job" in job["log"]
    assert "job finished: exited with code 0" in job["log"]
    files = {f["path"]: f for f in job["output_data"]["files"]}
    assert set(files) == {"spikes.txt"}
    assert files["spikes.txt"]["url"] == f"https://emulator.test/spinnaker/{job_id}/spikes.txt"
    assert len(files["spikes.txt"]["hash"]) == 64
    assert job["output_data"]["repository"] == "SpiNNaker emulator at emulator.test"
    usage = job["resource_usage"]
    assert usage["units"] == "core-hours"
    assert usage["value"] > 0
    provenance = job["provenance"]
    assert provenance["emulator"]["version"]
    assert provenance["emulator"]["runs"] == 1
    assert provenance["sandbox"]["ending"] == "exited"
    assert provenance["simulator"]["NEST"]
    assert isinstance(provenance["seed"], int)
    assert (tmp_path / "work" / str(job_id) / "spikes.txt").is_file()
    assert not (tmp_path / "work" / str(job_id) / ".nmpi-emulator").exists()
    assert (tmp_path / "work" / f"{job_id}.report-sent.json").is_file()
    assert not (tmp_path / "work" / f"{job_id}.claim.json").exists()

    charged = run_admin(database_url, lambda s: quotas.platform_quotas(s, account.collab, PLATFORM))
    assert sum(q.usage for q in charged) == pytest.approx(usage["value"])


def test_script_error_ends_in_error_with_the_traceback(
    site: QueueClient, user: tuple[Any, nmpi.Client], tmp_path: Path
) -> None:
    code = "def f():\n    raise ValueError('boom in the script')\nf()\n"
    job_id = submit(user, code)
    outcome = run_job(site, claim(site, job_id), make_config(tmp_path), threading.Event())
    assert outcome == "error"
    job = user[1].get_job(job_id, with_log=True)
    assert job["status"] == "error"
    assert "Traceback (most recent call last)" in job["log"]
    assert "ValueError: boom in the script" in job["log"]
    assert "job failed: exited with code 1" in job["log"]
    # No report file: the usage is the wall time on one core.
    assert job["resource_usage"]["units"] == "core-hours"


def test_bad_input_is_reported_without_running(
    site: QueueClient, user: tuple[Any, nmpi.Client], tmp_path: Path
) -> None:
    job_id = submit(user, "print('never')\n", config={"no_such_key": 1})
    outcome = run_job(site, claim(site, job_id), make_config(tmp_path), threading.Event())
    assert outcome == "error"
    job = user[1].get_job(job_id, with_log=True)
    assert "the job cannot run: hardware_config: unknown key 'no_such_key'" in job["log"]
    assert "never" not in job["log"].replace("'never'", "")
    assert job["output_data"]["files"] == []


def test_long_log_is_cut_with_a_note_and_the_whole_output_published(
    site: QueueClient, user: tuple[Any, nmpi.Client], tmp_path: Path
) -> None:
    job_id = submit(user, "for i in range(2000):\n    print('x' * 99)\n")
    config = make_config(tmp_path, log_max_chars=5000)
    assert run_job(site, claim(site, job_id), config, threading.Event()) == "finished"
    job = user[1].get_job(job_id, with_log=True)
    assert len(job["log"]) < 5300
    assert "... log truncated:" in job["log"]
    assert "see nmpi-emulator-output.log in the job's output files" in job["log"]
    assert "job finished: exited with code 0" in job["log"]  # the summary is never cut
    paths = [f["path"] for f in job["output_data"]["files"]]
    assert paths == ["nmpi-emulator-output.log"]
    whole = tmp_path / str(job_id) / "nmpi-emulator-output.log"
    assert whole.stat().st_size == 2000 * 100


class LosingClient(QueueClient):
    """The queue says the claim is gone at the first log PATCH (another holder has the job)."""

    def append_log(self, job_id: int, claim: str | None, text: str, *, deadline: float) -> bool:
        raise ClaimLostError("PATCH: 409 the claim expired and the job was handed out again")


def test_claim_lost_while_running_stops_the_job_and_reports_nothing(
    site: QueueClient,
    server: str,
    user: tuple[Any, nmpi.Client],
    tmp_path: Path,
    new_provider: Callable[[list[str]], str],
) -> None:
    job_id = submit(user, "import time\nprint('start', flush=True)\ntime.sleep(60)\n")
    claimed = claim(site, job_id)
    losing = LosingClient(server, "unused")
    losing._http = site._http  # same key and server
    started = time.monotonic()
    assert run_job(losing, claimed, make_config(tmp_path), threading.Event()) == "claim-lost"
    assert time.monotonic() - started < 15
    job = user[1].get_job(job_id, with_log=True)
    assert job["status"] == "running"  # nothing reported by the site that lost it
    assert not (tmp_path / f"{job_id}.report-pending.json").exists()
    # Tidy for the shared server: the job's real holder ends it.
    site.update(job_id, claimed.claim, {"status": "error"}, deadline=10)


def test_interrupted_job_runs_again_once(
    site: QueueClient, user: tuple[Any, nmpi.Client], tmp_path: Path
) -> None:
    job_id = submit(user, "print('second run')\n")
    claimed = claim(site, job_id)
    config = make_config(tmp_path)
    # The state a crash leaves: confirmed, claim record written, job folder half made.
    site.update(job_id, claimed.claim, {"status": "running"}, deadline=10)
    record = {"job": claimed.job, "claim": claimed.claim, "runs": 1, "started": 0}
    (tmp_path / f"{job_id}.claim.json").write_text(json.dumps(record))
    (tmp_path / str(job_id)).mkdir()
    (tmp_path / str(job_id) / "partial.dat").write_text("left by the first run")

    resumed = interrupted_jobs(config)
    assert [j.id for j in resumed] == [job_id]
    assert run_job(site, resumed[0], config, threading.Event()) == "finished"
    job = user[1].get_job(job_id, with_log=True)
    assert "stopped while this job ran (run 1): run again from the start" in job["log"]
    assert "second run" in job["log"]
    assert job["provenance"]["emulator"]["runs"] == 2
    assert not (tmp_path / str(job_id) / "partial.dat").exists()
    assert interrupted_jobs(config) == []


def test_job_that_stopped_the_site_twice_is_not_run_again(
    site: QueueClient, user: tuple[Any, nmpi.Client], tmp_path: Path
) -> None:
    job_id = submit(user, "print('third run')\n")
    claimed = claim(site, job_id)
    site.update(job_id, claimed.claim, {"status": "running"}, deadline=10)
    record = {"job": claimed.job, "claim": claimed.claim, "runs": runner.MAX_RUNS, "started": 0}
    (tmp_path / f"{job_id}.claim.json").write_text(json.dumps(record))
    config = make_config(tmp_path)
    assert run_job(site, interrupted_jobs(config)[0], config, threading.Event()) == "error"
    job = user[1].get_job(job_id, with_log=True)
    assert job["status"] == "error"
    assert f"stopped during each of {runner.MAX_RUNS} runs: not run again" in job["log"]
    assert "third run" not in job["log"].replace("'third run'", "")


def test_report_kept_pending_while_the_queue_is_down_and_delivered_once(
    server: str, site: QueueClient, user: tuple[Any, nmpi.Client], tmp_path: Path
) -> None:
    proxy = TcpProxy(server).start()
    job_id = submit(user, "import time\ntime.sleep(2)\nprint('ran once')\n")
    config = make_config(tmp_path / "work", report_deadline=1.0, pending_deadline=0.5)
    key = site._http.headers["x-api-key"]
    with QueueClient(proxy.url, key, timeout=2, backoff_base=0.1, backoff_cap=0.3) as behind:
        claimed = claim(behind, job_id)
        result: list[str] = []
        worker = threading.Thread(
            target=lambda: result.append(run_job(behind, claimed, config, threading.Event()))
        )
        worker.start()
        while user[1].get_job(job_id)["status"] != "running":
            time.sleep(0.05)
        proxy.stop()  # the queue goes away while the job runs
        worker.join(60)
        assert result == ["finished"]
        pending = tmp_path / "work" / f"{job_id}.report-pending.json"
        assert pending.is_file()
        assert runner.send_pending_reports(behind, config) == 0  # still away: kept
        assert pending.is_file()
        assert user[1].get_job(job_id)["status"] == "running"

        proxy.start()  # back
        assert runner.send_pending_reports(behind, config) == 1
        assert not pending.exists()
        assert runner.send_pending_reports(behind, config) == 0
        job = user[1].get_job(job_id, with_log=True)
        assert job["status"] == "finished"
        assert job["log"].count("ran once") == 1
        assert behind.next_job(PLATFORM) is None

        # Handed out again (a fail-over lost the report): the report, not a second run.
        before = (tmp_path / "work" / str(job_id)).stat().st_mtime_ns
        again = ClaimedJob(job=claimed.job, claim=claimed.claim)
        assert run_job(behind, again, config, threading.Event()) == "finished"
        assert (tmp_path / "work" / str(job_id)).stat().st_mtime_ns == before
    proxy.stop()


def test_a_job_whose_code_is_an_archive_stored_in_the_queue_finishes(
    server: str,
    site: QueueClient,
    user: tuple[Any, nmpi.Client],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Uploaded to the real job queue (POST /code-archives/), fetched from it with the key."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    key = site._http.headers["x-api-key"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("run.py", "print('ran from the stored archive')\n")
    data = buffer.getvalue()
    account = user[0]
    uploaded = httpx.post(
        f"{server}/code-archives/",
        params={"collab": account.collab, "filename": "model.zip"},
        content=data,
        headers={"Authorization": f"Bearer {account.token}"},
        timeout=30,
    )
    assert uploaded.status_code == 201, uploaded.text
    path = uploaded.json()["path"]
    assert path == f"/code-archives/{hashlib.sha256(data).hexdigest()}.zip"
    job_id = submit(user, server + path)
    config = make_config(tmp_path, queue_source=QueueSource(server, key))
    assert run_job(site, claim(site, job_id), config, threading.Event()) == "finished"
    job = user[1].get_job(job_id, with_log=True)
    assert job["status"] == "finished", job["log"]
    assert f"archive {server}{path} from the job queue, SHA-256 checked" in job["log"]
    assert "ran from the stored archive" in job["log"]
