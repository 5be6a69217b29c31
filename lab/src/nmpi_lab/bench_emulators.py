"""The emulated hardware sites' speed on the deployed lab (make lab first).

    python -m nmpi_lab.bench_emulators [--jobs 5] [--burst 16]

1. Latency: the SpiNNaker example (platform/emulators/examples/spinnaker_network.py: 20
   Poisson sources driving 80 + 20 cells, 1 s of biological time run in real time), submitted
   --jobs times one after the other through the public name; each from the submission to
   `finished` as the user's client sees it (polled every 0.25 s), with where the time went
   (waiting in the queue, running at the site, the rest: the API and the report). Target: a
   median under 10 s.
2. Throughput: --burst copies submitted at once; jobs per minute until the last one finished,
   with the SpiNNaker emulator's workers (4 in the lab).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from nmpi_devstack.paths import REPO_ROOT

from nmpi_lab import deployment

EXAMPLE = REPO_ROOT / "platform" / "emulators" / "examples" / "spinnaker_network.py"
TARGET_S = 10.0
POLL = 0.25
JOB_TIMEOUT = 300.0
TERMINAL = ("finished", "error")


class Queue:
    """The demo user's view of the job queue through the public name."""

    def __init__(self, lab: deployment.Deployment) -> None:
        self.http = httpx.Client(
            base_url=lab.url,
            verify=lab.tls_context(),
            timeout=30,
            headers={"Authorization": f"Bearer {lab.demo_token()}"},
        )

    def submit(self, code: str) -> tuple[int, float]:
        job = {"code": code, "command": "run.py {system}", "hardware_platform": "SpiNNaker",
               "collab": deployment.DEMO_COLLAB, "tags": ["bench"]}  # fmt: skip
        started = time.monotonic()
        reply = self.http.post("/jobs/", json=job)
        reply.raise_for_status()
        return int(reply.json()["id"]), started

    def wait(self, job_id: int) -> tuple[dict[str, Any], float]:
        """The job once finished (or in error), and when this client saw it so."""
        deadline = time.monotonic() + JOB_TIMEOUT
        while time.monotonic() < deadline:
            body: dict[str, Any] = self.http.get(f"/jobs/{job_id}?with_log=false").json()
            if body.get("status") in TERMINAL:
                return body, time.monotonic()
            time.sleep(POLL)
        raise TimeoutError(f"job {job_id} not finished within {JOB_TIMEOUT:.0f} s")


def latency(queue: Queue, code: str, jobs: int) -> list[dict[str, float]]:
    rows = []
    for _ in range(jobs):
        job_id, started = queue.submit(code)
        body, seen = queue.wait(job_id)
        if body["status"] != "finished":
            raise RuntimeError(f"job {job_id} ended in {body['status']}")
        timings = body["provenance"]["timings"]
        total = seen - started
        rows.append(
            {
                "total": total,
                "queue": float(timings["queue_wait_s"]),
                "run": float(timings["run_s"]),
                "rest": total - float(timings["queue_wait_s"]) - float(timings["run_s"]),
            }
        )
    return rows


def throughput(queue: Queue, code: str, burst: int) -> tuple[float, float]:
    """(jobs per minute, seconds) for `burst` jobs submitted at once."""
    submitted = [queue.submit(code) for _ in range(burst)]
    first = submitted[0][1]
    last_seen = first
    for job_id, _ in submitted:
        body, seen = queue.wait(job_id)
        if body["status"] != "finished":
            raise RuntimeError(f"job {job_id} ended in {body['status']}")
        last_seen = max(last_seen, seen)
    seconds = last_seen - first
    return burst / seconds * 60, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmpi_lab.bench_emulators",
        description=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=5, help="latency samples (default 5)")
    parser.add_argument("--burst", type=int, default=16, help="jobs at once (default 16)")
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= 100 or not 1 <= args.burst <= 200:
        parser.error("--jobs must be 1-100 and --burst 1-200")
    try:
        lab = deployment.load()
    except LookupError as exc:
        print(f"bench-emulators: {exc}", file=sys.stderr)
        return 1
    if not lab.hardware_sites:
        print(
            "bench-emulators: the lab has no hardware sites (group hardware_sites)", file=sys.stderr
        )
        return 1
    code = Path(EXAMPLE).read_text()
    with lab.public_name_resolved():
        queue = Queue(lab)
        rows = latency(queue, code, args.jobs)
        per_minute, seconds = throughput(queue, code, args.burst)
    print(f"SpiNNaker example ({EXAMPLE.name}), submission to finished, {args.jobs} jobs in a row:")
    for key in ("total", "queue", "run", "rest"):
        values = [r[key] for r in rows]
        print(
            f"  {key:<6} median {statistics.median(values):6.2f} s   "
            f"min {min(values):6.2f} s   max {max(values):6.2f} s"
        )
    median = statistics.median(r["total"] for r in rows)
    verdict = "within" if median < TARGET_S else "OVER"
    print(f"  median {median:.2f} s: {verdict} the {TARGET_S:.0f} s target")
    print(
        f"{args.burst} jobs at once: all finished in {seconds:.1f} s, "
        f"{per_minute:.1f} jobs per minute with the site's workers"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
