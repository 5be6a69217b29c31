"""The emulated hardware sites on the lab: what a neuroscientist does, end to end.

The unmodified nmpi client submits the examples of platform/emulators/examples through the
public name with `submit_job(..., wait=True)`; the SpiNNaker and BrainScaleS-2 emulators at the
lab's hardware location take them, run them on NEST in their sandboxes and report back;
`download_data` brings the neo files and the figure from the hardware site over TLS, and the
quota shows the usage. Scripts that break a rule, open a connection, run too long or fill the
disk end in `error` saying why, and the emulator goes on serving.

This module runs after test_monitoring_on_lab.py (pytest takes the files in name order): its
jobs load the one machine the whole lab shares, and the job queue's claims then answer in over
1 s often enough to burn the latency budget (JobQueueLatencyBudgetBurnFast), which the
monitoring suite's "a healthy platform fires no alert" would see.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import neo  # type: ignore[import-untyped]
import nmpi
import pytest
from nmpi_lab import bench_emulators, deployment

from tests.support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.lab]

EXAMPLES = REPO / "platform" / "emulators" / "examples"
# The lab's limits (inventories/lab/group_vars/hardware): a job past them ends in error.
WALL_TIME_LIMIT = 60
DISK_LIMIT_MB = 200
# A job the emulators take: the time it may wait in the queue and run (plus its wall-time limit).
JOB_DEADLINE = 180.0


@pytest.fixture(scope="module")
def client(lab: deployment.Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The demo user's nmpi client through the public name; the lab CA for requests (the API)
    and for urllib (download_data fetches outputs from the hardware site with urlretrieve)."""
    with pytest.MonkeyPatch.context() as patch, lab.public_name_resolved():
        patch.setattr(nmpi.nmpi_user, "TOKENFILE", str(tmp_path_factory.mktemp("nmpi") / "tok"))
        patch.setenv("REQUESTS_CA_BUNDLE", str(lab.ca_file))
        patch.setenv("SSL_CERT_FILE", str(lab.ca_file))
        yield nmpi.Client(
            token=lab.demo_token(), job_service=lab.url, user_info_endpoint=f"{lab.url}/userinfo"
        )


def submit_and_wait(client: Any, **fields: Any) -> dict[str, Any]:
    """submit_job(..., wait=True) as a user calls it, bounded: the client itself waits for ever."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["job"] = client.submit_job(collab_id=deployment.DEMO_COLLAB, wait=True, **fields)
        except BaseException as exc:  # handed to the test's thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(JOB_DEADLINE)
    assert not thread.is_alive(), f"no result within {JOB_DEADLINE} s: is an emulator running?"
    if "error" in result:
        raise result["error"]
    job: dict[str, Any] = result["job"]
    job["_seconds"] = time.monotonic() - started
    return job


def quota_usage(lab: deployment.Deployment, platform: str) -> float:
    """The demo collab's usage of `platform`, from its projects' quotas (the API)."""
    headers = {"Authorization": f"Bearer {lab.demo_token()}"}
    with lab.public_name_resolved(), httpx.Client(verify=str(lab.ca_file), timeout=30) as http:
        projects = http.get(
            f"{lab.url}/projects/", params={"collab": deployment.DEMO_COLLAB}, headers=headers
        ).json()
        usage = 0.0
        for project in projects:
            quotas = http.get(f"{lab.url}/projects/{project['id']}/quotas/", headers=headers)
            usage += sum(q["usage"] for q in quotas.json() if q["platform"] == platform)
    return usage


def test_the_spinnaker_example_runs_end_to_end(
    lab: deployment.Deployment, client: Any, tmp_path: Path
) -> None:
    before = quota_usage(lab, "SpiNNaker")
    job = submit_and_wait(
        client, source=str(EXAMPLES / "spinnaker_network.py"), platform="SpiNNaker"
    )
    assert job["status"] == "finished", client.get_job(job["id"], with_log=True).get("log")
    usage = job["resource_usage"]
    assert usage["units"] == "core-hours"
    # 4 cores (20 sources, 80 + 20 cells at 64 per core) for 1 s of real time.
    assert usage["value"] == pytest.approx(4 / 3600, rel=0.01)
    assert quota_usage(lab, "SpiNNaker") == pytest.approx(before + usage["value"], rel=1e-6)
    provenance = job["provenance"]
    assert provenance["simulator"]["NEST"] == "3.10.0"
    assert provenance["cores"] == 4

    files = client.download_data(job, local_dir=str(tmp_path))
    by_name = {Path(f).relative_to(tmp_path).as_posix(): Path(f) for f in files}
    assert {"results/excitatory.pkl", "results/inhibitory.pkl", "results/raster.png"} <= set(
        by_name
    )
    assert by_name["results/raster.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    block = neo.io.PickleIO(str(by_name["results/excitatory.pkl"])).read_block()
    trains = block.segments[0].spiketrains
    assert len(trains) == 80
    assert sum(len(t) for t in trains) > 0
    log = client.get_job(job["id"], with_log=True)["log"]
    assert "spikes from 80 excitatory cells" in log


def test_the_brainscales2_example_runs_end_to_end(
    lab: deployment.Deployment, client: Any, tmp_path: Path
) -> None:
    job = submit_and_wait(
        client, source=str(EXAMPLES / "brainscales2_network.py"), platform="BrainScaleS-2"
    )
    assert job["status"] == "finished", client.get_job(job["id"], with_log=True).get("log")
    assert job["resource_usage"]["units"] == "chip-hours"
    # One run of 100 ms biological time: 0.1 ms on the chip plus 0.5 s of overhead.
    assert job["resource_usage"]["value"] == pytest.approx(0.5001 / 3600, rel=0.01)
    assert quota_usage(lab, "BrainScaleS-2") >= job["resource_usage"]["value"]
    files = client.download_data(job, local_dir=str(tmp_path))
    spikes = next(Path(f) for f in files if f.endswith("spikes.pkl"))
    trains = neo.io.PickleIO(str(spikes)).read_block().segments[0].spiketrains
    assert len(trains) == 64


BAD_JOBS = {
    "hardware rule": (
        "import pyNN.spiNNaker as sim\nsim.setup()\nsim.Population(10, sim.HH_cond_exp())\n",
        "SpiNNaker does not support cell type HH_cond_exp",
    ),
    "network": (
        "import socket\nsocket.create_connection(('{address}', 443), timeout=5)\n",
        "Network is unreachable",
    ),
    "wall time": ("import time\ntime.sleep(3600)\n", "wall-time limit"),
    "disk": (
        "with open('big', 'wb') as f:\n"
        f"    for _ in range({DISK_LIMIT_MB + 50}):\n"
        "        f.write(b'x' * 1024 * 1024)\n",
        "disk limit",
    ),
}


def test_jobs_that_break_a_limit_end_in_error_saying_why(
    lab: deployment.Deployment, client: Any
) -> None:
    address = lab.host("castor", "web").public_ip
    uris = {
        name: client.submit_job(
            source=code.replace("{address}", address),
            platform="SpiNNaker",
            collab_id=deployment.DEMO_COLLAB,
        )
        for name, (code, _) in BAD_JOBS.items()
    }
    deadline = time.monotonic() + JOB_DEADLINE + WALL_TIME_LIMIT
    jobs: dict[str, dict[str, Any]] = {}
    while len(jobs) < len(uris) and time.monotonic() < deadline:
        for name, uri in uris.items():
            if name not in jobs and client.job_status(uri) in ("finished", "error"):
                jobs[name] = client.get_job(uri, with_log=True)
        time.sleep(2)
    assert set(jobs) == set(uris), f"not ended within the deadline: {set(uris) - set(jobs)}"
    for name, (_, reason) in BAD_JOBS.items():
        assert jobs[name]["status"] == "error", (name, jobs[name]["log"][-2000:])
        assert reason in jobs[name]["log"], (name, jobs[name]["log"][-2000:])
    # The emulator goes on serving.
    after = submit_and_wait(client, source="print('still serving')", platform="SpiNNaker")
    assert after["status"] == "finished"


def test_the_emulators_speed_is_measured(capsys: pytest.CaptureFixture[str]) -> None:
    # A benchmark, not a timed assertion: make bench-emulators' figures, kept in the log.
    assert bench_emulators.main(["--jobs", "3", "--burst", "8"]) == 0
    out = capsys.readouterr().out
    (REPO / ".cache" / "logs").mkdir(parents=True, exist_ok=True)
    (REPO / ".cache" / "logs" / "emulators-bench.txt").write_text(out)
    with capsys.disabled():
        print("\n" + out)
    assert "median" in out
    assert "jobs per minute" in out


def test_the_emulators_metrics_reach_prometheus(lab: deployment.Deployment) -> None:
    query = 'sum by (job) (nmpi_emulator_jobs_total{outcome="finished"})'

    def finished() -> dict[str, float]:
        return {r["metric"]["job"]: float(r["value"][1]) for r in lab.prometheus_query(query)}

    deadline = time.monotonic() + 120
    seen = finished()
    while set(seen) != {"emulator-spinnaker", "emulator-brainscales"}:
        assert time.monotonic() < deadline, seen
        time.sleep(10)
        seen = finished()
    assert all(value >= 1 for value in seen.values()), seen
