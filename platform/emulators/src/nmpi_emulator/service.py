"""The hardware site: worker threads that poll the queue, run jobs and report them.

Each worker polls GET /jobs/next/{platform}; an empty or unreachable queue makes it back off
(full jitter, from `idle_base` up to `idle_cap` seconds, as the SpiNNaker site sleeps 10 s when
empty). Reports left pending by a queue outage are sent before each poll.

Drain (SIGTERM): no more claims; running jobs get `drain_timeout` seconds to end; then they are
stopped and reported as errors ("the hardware site shut down ... submit it again"). They are not
left to the lease: a confirmed claim never expires, so they would stay `running` until this
site came back. A job claimed while the drain began is not confirmed: its lease runs out and the
queue hands it out again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from . import __version__
from .queue import (
    Backoff,
    ClaimedJob,
    QueueClient,
    QueueError,
    QueueRequestError,
)
from .runner import RunnerConfig, interrupted_jobs, run_job, send_pending_reports

log = logging.getLogger("nmpi_emulator.service")

JOBS = Counter("nmpi_emulator_jobs_total", "Jobs taken, by how they ended", ["platform", "outcome"])
JOB_RUN_SECONDS = Histogram(
    "nmpi_emulator_job_run_seconds",
    "Time from claim to final report of a job",
    ["platform"],
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
QUEUE_WAIT_SECONDS = Histogram(
    "nmpi_emulator_queue_wait_seconds",
    "Time from a job's submission to its claim by this site",
    ["platform"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400),
)
WORKERS = Gauge("nmpi_emulator_workers", "Worker threads", ["platform"])
WORKERS_BUSY = Gauge("nmpi_emulator_workers_busy", "Workers running a job", ["platform"])
POLL_ERRORS = Counter(
    "nmpi_emulator_poll_errors_total", "Polls of the queue that failed", ["platform"]
)
REPORTS_PENDING = Gauge(
    "nmpi_emulator_reports_pending", "Final reports waiting for the queue", ["platform"]
)
UP = Gauge("nmpi_emulator_up", "1 while the site takes jobs, 0 once it drains", ["platform"])
INFO = Gauge("nmpi_emulator_info", "The emulator's version", ["platform", "version"])

RunJob = Callable[[QueueClient, ClaimedJob, RunnerConfig, threading.Event], str]


class EmulatorService:
    def __init__(
        self,
        client: QueueClient,
        config: RunnerConfig,
        *,
        workers: int = 4,
        idle_base: float = 1.0,
        idle_cap: float = 10.0,
        drain_timeout: float = 300.0,
        run: RunJob = run_job,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.client = client
        self.config = config
        self.workers = workers
        self.idle = (idle_base, idle_cap)
        self.drain_timeout = drain_timeout
        self._run = run
        self._draining = threading.Event()
        self._stop_jobs = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._resume: list[ClaimedJob] = []
        self._state = "starting"
        self.busy = 0  # workers running a job
        self.platform = config.platform

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Send what a previous run left pending, queue its interrupted jobs, start workers."""
        self.config.work_root.mkdir(parents=True, exist_ok=True)
        self._resume = interrupted_jobs(self.config)
        if self._resume:
            log.warning(
                "jobs interrupted by a previous stop are run again",
                extra={"platform": self.platform, "jobs": [j.id for j in self._resume]},
            )
        INFO.labels(self.platform, __version__).set(1)
        WORKERS.labels(self.platform).set(self.workers)
        WORKERS_BUSY.labels(self.platform).set(0)
        UP.labels(self.platform).set(1)
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"worker-{n}", daemon=True)
            self._threads.append(thread)
            thread.start()
        log.info(
            "emulator started",
            extra={"platform": self.platform, "workers": self.workers, "version": __version__},
        )

    def drain(self, timeout: float | None = None) -> bool:
        """Take no more jobs, give the running ones `timeout` (default drain_timeout) seconds,
        then stop them (they are reported as errors). True when every worker ended."""
        timeout = self.drain_timeout if timeout is None else timeout
        log.info("draining", extra={"platform": self.platform, "running": self.busy})
        self._draining.set()
        UP.labels(self.platform).set(0)
        ends = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, ends - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            log.warning(
                "drain timeout: stopping running jobs",
                extra={"platform": self.platform, "timeout_s": timeout},
            )
            self._stop_jobs.set()
            # The sandbox's grace, then the final PUT's shortened deadline.
            ends = time.monotonic() + self.config.stop_report_deadline + 10
            for thread in self._threads:
                thread.join(max(0.0, ends - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        log.info("drained", extra={"platform": self.platform, "clean": done})
        return done

    # -- the workers -----------------------------------------------------------------------

    def _work(self) -> None:
        backoff = Backoff(*self.idle)
        while not self._draining.is_set():
            claimed = self._take_resumed()
            if claimed is None:
                self._send_pending()
                claimed = self._poll(backoff)
                if claimed is None:
                    continue
            if self._draining.is_set():
                log.info(
                    "claimed while draining: left to its lease",
                    extra={"platform": self.platform, "job_id": claimed.id},
                )
                break
            backoff.reset()
            self._run_one(claimed)

    def _take_resumed(self) -> ClaimedJob | None:
        with self._lock:
            return self._resume.pop(0) if self._resume else None

    def _poll(self, backoff: Backoff) -> ClaimedJob | None:
        try:
            claimed = self.client.next_job(self.platform)
        except QueueError as error:
            POLL_ERRORS.labels(self.platform).inc()
            state = "refused" if isinstance(error, QueueRequestError) else "unreachable"
            self._set_state(state, str(error))
            self._draining.wait(backoff.next())
            return None
        self._set_state("ok", "")
        if claimed is None:
            self._draining.wait(backoff.next())
        return claimed

    def _set_state(self, state: str, detail: str) -> None:
        """Log the queue's reachability when it changes, not at every poll."""
        with self._lock:
            if state == self._state:
                return
            before, self._state = self._state, state
        extra = {"platform": self.platform, "queue": self.client.base_url, "error": detail}
        if state == "ok":
            log.info("queue reachable", extra={**extra, "before": before})
        elif state == "refused":
            log.error("queue refuses this site's polls (check the API key)", extra=extra)
        else:
            log.warning("queue unreachable: backing off", extra=extra)

    def _send_pending(self) -> None:
        # One worker at a time; the others go on polling.
        if not self._pending_lock.acquire(blocking=False):
            return
        try:
            if any(self.config.work_root.glob("*.report-pending.json")):
                sent = send_pending_reports(self.client, self.config)
                if sent:
                    log.info(
                        "pending reports sent", extra={"platform": self.platform, "reports": sent}
                    )
            pending = sum(1 for _ in self.config.work_root.glob("*.report-pending.json"))
            REPORTS_PENDING.labels(self.platform).set(pending)
        except Exception:
            log.exception("sending pending reports failed", extra={"platform": self.platform})
        finally:
            self._pending_lock.release()

    def _run_one(self, claimed: ClaimedJob) -> None:
        wait = claimed.queue_wait_seconds()
        if wait is not None:
            QUEUE_WAIT_SECONDS.labels(self.platform).observe(wait)
        with self._lock:
            self.busy += 1
            WORKERS_BUSY.labels(self.platform).set(self.busy)
        started = time.monotonic()
        try:
            outcome = self._run(self.client, claimed, self.config, self._stop_jobs)
        except Exception:
            # A bug of ours: the claim record stays, so the next start runs the job again.
            log.exception(
                "job crashed the runner", extra={"platform": self.platform, "job_id": claimed.id}
            )
            outcome = "crashed"
        finally:
            with self._lock:
                self.busy -= 1
                WORKERS_BUSY.labels(self.platform).set(self.busy)
        JOBS.labels(self.platform, outcome).inc()
        JOB_RUN_SECONDS.labels(self.platform).observe(time.monotonic() - started)
        log.info(
            "job done",
            extra={
                "platform": self.platform,
                "job_id": claimed.id,
                "outcome": outcome,
                "duration_s": round(time.monotonic() - started, 3),
            },
        )
