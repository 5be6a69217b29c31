"""One job, from its claim to its final report.

    confirm (PUT validated, running) -> claim record -> job folder -> hardware_config, code,
    command -> sandbox run (log PATCHed every few seconds) -> outputs, report file -> final PUT

Files under `work_root` (one service per work_root):

    <id>/                     the job's folder: its code and outputs (served by URL from there)
    <id>/.nmpi-emulator/      the front-end's report file (the sandbox's only writable place is
                              the job's folder); removed after the run, never an output
    <id>.private/             the job's whole output (the log keeps log_max_chars of it)
    <id>.claim.json           written once the claim is confirmed, removed once reported
    <id>.report-pending.json  the final PUT's body, written before it is sent
    <id>.report-sent.json     the same once the queue took it

A report is written before it is sent: a final PUT that cannot be delivered before the deadline
(the queue is failing over) stays pending and send_pending_reports() delivers it later, and a job
handed out again whose report exists (sent or not) gets that report instead of a second run. A
claim record without a report means the emulator stopped while the job ran: interrupted_jobs()
hands such jobs back to be run again from a fresh folder (they never reached the final PUT, so
nothing of the first run was reported); once only, then they end in error.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import os
import secrets
import shutil
import sysconfig
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from . import __version__, command, hardware_config, outputs, sandbox, workspace
from .errors import JobInputError
from .queue import ClaimedJob, ClaimLostError, QueueClient, QueueError, QueueRequestError

log = logging.getLogger("nmpi_emulator.runner")

Isolation = Literal["bwrap", "none"]

USAGE_UNITS = {"SpiNNaker": "core-hours", "BrainScaleS-2": "chip-hours"}
CONFIRM_DEADLINE = 60.0  # seconds: past the lease (300 s) fencing makes a late confirm harmless
PATCH_DEADLINE = 5.0  # a log append is best effort: never hold the job for it
MAX_RUNS = 2  # a job that stopped the emulator twice ends in error instead of a third run
FULL_OUTPUT_MAX_BYTES = 64 * 2**20  # the whole output kept beside the log, for the outputs
FULL_OUTPUT_NAME = "nmpi-emulator-output.log"
REPORT_DIR = ".nmpi-emulator"
SEED_MAX = 2**31 - 1  # NEST's seed range


@dataclass(frozen=True)
class RunnerConfig:
    platform: str
    work_root: Path
    outputs_base_url: str
    python: str
    overlay: Path
    read_only_paths: tuple[Path, ...]
    limits: sandbox.Limits
    input_limits: workspace.InputLimits
    isolation: Isolation
    log_max_chars: int = 100_000
    log_patch_interval: float = 2.0
    report_deadline: float = 600.0
    # Final PUT deadline of a job stopped because the site shuts down: not held for 10 minutes.
    stop_report_deadline: float = 15.0
    # Per pending report per round: the poll loop must go on while the queue is still away.
    pending_deadline: float = 10.0
    # After the overlay on the job's PYTHONPATH: where nmpi_emulator itself is, when it is not
    # installed in `python`'s site-packages (a source checkout); see package_path().
    python_path: tuple[Path, ...] = ()
    # The queue polled (its URL, key, CA): code archives stored in it are fetched from it.
    queue_source: workspace.QueueSource | None = None


def package_path() -> tuple[Path, ...]:
    """The folder holding nmpi_emulator, if it is not in site-packages (the front-ends import it
    in the job's interpreter); () when installed."""
    root = Path(__file__).resolve().parent.parent
    installed = {
        Path(p).resolve() for p in (sysconfig.get_path("purelib"), sysconfig.get_path("platlib"))
    }
    return () if root in installed else (root,)


def job_env(
    job_dir: Path, report_file: Path, seed: int, python_path: Sequence[Path]
) -> dict[str, str]:
    """The job's whole environment (the sandbox adds PATH): nothing of the service's."""
    return {
        "NMPI_EMULATOR_REPORT": str(report_file),
        "NMPI_EMULATOR_SEED": str(seed),
        "PYTHONPATH": os.pathsep.join(str(p) for p in python_path),
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",  # the log streams as the script prints
        "HOME": str(job_dir),
        # Out of the job's folder (else its caches would show as outputs): /tmp is the job's.
        "MPLCONFIGDIR": "/tmp/matplotlib",
        # OpenBLAS and OpenMP start a thread per core, 40-50 MB each: one is what a job needs.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


# -- files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobFiles:
    root: Path
    job_id: int

    @property
    def job_dir(self) -> Path:
        return self.root / str(self.job_id)

    @property
    def private(self) -> Path:
        return self.root / f"{self.job_id}.private"

    @property
    def claim(self) -> Path:
        return self.root / f"{self.job_id}.claim.json"

    @property
    def pending(self) -> Path:
        return self.root / f"{self.job_id}.report-pending.json"

    @property
    def sent(self) -> Path:
        return self.root / f"{self.job_id}.report-sent.json"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, owner-only (claim ids and logs are private to the site)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- the job's log -----------------------------------------------------------------------------


class JobLog:
    """The job's output as text: kept up to `max_chars`, the rest counted (and in the whole
    output file); what is new since the last PATCH is handed out by unsent()."""

    def __init__(self, max_chars: int, full_output: Path | None = None) -> None:
        self.max_chars = max_chars
        # Room kept for the emulator's own last lines (how the job ended), past a long output.
        self._reserve = min(2000, max_chars // 10)
        self._parts: list[str] = []
        self._kept = 0
        self._sent = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._full = full_output.open("ab") if full_output is not None else None
        self._full_bytes = 0

    def output(self, data: bytes) -> None:
        """The sandbox's on_output: bytes of the job's stdout and stderr."""
        with self._lock:
            if self._full is not None and self._full_bytes < FULL_OUTPUT_MAX_BYTES:
                chunk = data[: FULL_OUTPUT_MAX_BYTES - self._full_bytes]
                self._full.write(chunk)
                self._full_bytes += len(chunk)
            self._add(self._decoder.decode(data), self.max_chars - self._reserve)

    def write(self, text: str) -> None:
        """A line of the emulator's own."""
        with self._lock:
            self._add(text if text.endswith("\n") else text + "\n", self.max_chars)

    def _add(self, text: str, limit: int) -> None:
        # The queue stores the log as PostgreSQL text, which cannot hold NUL.
        text = text.replace("\x00", "\ufffd")
        room = limit - self._kept
        if room > 0:
            self._parts.append(text[:room])
            self._kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))

    def unsent(self) -> str:
        with self._lock:
            text = "".join(self._parts)
            new = text[self._sent :]
            self._sent = len(text)
            return new

    def unsend(self, text: str) -> None:
        """A PATCH failed: send `text` again with the next one."""
        with self._lock:
            self._sent -= len(text)

    def close(self) -> None:
        with self._lock:
            self._add(self._decoder.decode(b"", final=True), self.max_chars - self._reserve)
            if self._full is not None:
                self._full.close()
                self._full = None

    def text(self, see: str) -> str:
        with self._lock:
            kept = "".join(self._parts)
            if self.dropped:
                kept += f"\n... log truncated: {self.dropped} characters more, see {see}\n"
            return kept


# -- one job -----------------------------------------------------------------------------------


@dataclass
class _Run:
    """What the log pump and the job's thread share."""

    claim_lost: threading.Event = field(default_factory=threading.Event)
    kill: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


def _pump(
    client: QueueClient,
    claimed: ClaimedJob,
    config: RunnerConfig,
    job_log: JobLog,
    stop: threading.Event,
    run: _Run,
) -> None:
    """Every log_patch_interval, append the new output to the job's log; pass the site's stop
    on to the sandbox; stop the job when its claim turns out lost."""
    next_patch = time.monotonic() + config.log_patch_interval
    while not run.done.wait(0.1):
        if stop.is_set():
            run.kill.set()
        if time.monotonic() < next_patch:
            continue
        text = job_log.unsent()
        if text:
            try:
                sent = client.append_log(
                    claimed.id,
                    claimed.claim,
                    text,
                    deadline=min(PATCH_DEADLINE, config.log_patch_interval * 2),
                )
            except ClaimLostError:
                run.claim_lost.set()
                run.kill.set()
                return
            if not sent:
                job_log.unsend(text)
        next_patch = time.monotonic() + config.log_patch_interval


def _seed() -> int:
    """A fresh seed per run, reported in the provenance (users reproduce a run with it)."""
    return secrets.randbelow(SEED_MAX) + 1


def _repository(config: RunnerConfig) -> str:
    host = urlsplit(config.outputs_base_url).netloc or config.outputs_base_url
    return f"{config.platform} emulator at {host}"[:100]  # the queue's limit


def _usage(report: dict[str, Any] | None, platform: str, wall_seconds: float) -> dict[str, Any]:
    """The front-end's usage; without a (valid) report, the wall time on the smallest unit the
    platform charges: one SpiNNaker core, one BrainScaleS-2 chip."""
    units = USAGE_UNITS.get(platform, "hours")
    usage = report.get("resource_usage") if report else None
    if isinstance(usage, dict) and usage.get("units") == units:
        value = usage.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return {"value": float(value), "units": units}
    return {"value": round(wall_seconds / 3600, 9), "units": units}


def _ending(outcome: sandbox.Outcome) -> str:
    if outcome.ending == "exited":
        return f"exited with code {outcome.exit_code}"
    return f"{outcome.ending}: {outcome.message}" if outcome.message else outcome.ending


# Jobs run_job is busy with in this process: send_pending_reports leaves their reports alone
# (a report is written before its first attempt, and is not pending yet while that runs).
_active: set[tuple[Path, int]] = set()
_active_lock = threading.Lock()


def run_job(
    client: QueueClient, claimed: ClaimedJob, config: RunnerConfig, stop: threading.Event
) -> str:
    """Run one claimed job and report it; "finished", "error" or "claim-lost" (not ours: not
    run, or stopped, and nothing reported). `stop` set: the site shuts down, the job is stopped
    and reported as an error."""
    key = (config.work_root, claimed.id)
    with _active_lock:
        if key in _active:  # handed out again while it runs here: it is ours already
            log.warning("job already running here", extra={"job_id": claimed.id})
            return "claim-lost"
        _active.add(key)
    try:
        return _run_job(client, claimed, config, stop)
    finally:
        with _active_lock:
            _active.discard(key)


def _run_job(
    client: QueueClient, claimed: ClaimedJob, config: RunnerConfig, stop: threading.Event
) -> str:
    files = JobFiles(config.work_root, claimed.id)
    extra = {"job_id": claimed.id, "platform": config.platform}
    config.work_root.mkdir(parents=True, exist_ok=True)

    saved = _read_json(files.pending) or _read_json(files.sent)
    if saved is not None and isinstance(saved.get("body"), dict):
        # Ran here before and reported (or tried to): the queue lost it (a fail-over) and handed
        # the job out again. Its report, with the new claim, instead of a second run.
        log.warning("job handed out again after it ran here: report sent again", extra=extra)
        saved["claim"] = claimed.claim
        _write_json(files.pending, saved)
        return _deliver(client, files, saved, config.report_deadline)

    record = _read_json(files.claim)
    runs = int(record.get("runs", 0)) if record else 0
    try:
        # A job that ran before is `running` already: `validated` would be a refused step back.
        for status in ("running",) if runs else ("validated", "running"):
            client.update(claimed.id, claimed.claim, {"status": status}, deadline=CONFIRM_DEADLINE)
    except ClaimLostError as error:
        log.warning("claim lost before the job started", extra={**extra, "error": str(error)})
        return "claim-lost"
    except QueueError as error:
        # Unconfirmed: the lease runs out and the job is handed out again; nothing was run.
        log.error("could not confirm the claim", extra={**extra, "error": str(error)})
        return "claim-lost"
    _write_json(
        files.claim,
        {"job": claimed.job, "claim": claimed.claim, "runs": runs + 1, "started": time.time()},
    )

    shutil.rmtree(files.job_dir, ignore_errors=True)
    shutil.rmtree(files.private, ignore_errors=True)
    files.job_dir.mkdir()
    files.private.mkdir(mode=0o700)
    job_log = JobLog(config.log_max_chars, files.private / "output.log")
    job_log.write(
        f"nmpi-emulator {__version__}: {config.platform} emulator, job {claimed.id} "
        f"(PyNN on NEST, sandbox {config.isolation})"
    )
    started = time.monotonic()
    if runs >= MAX_RUNS:
        job_log.write(f"the hardware site stopped during each of {runs} runs: not run again")
        job_log.close()
        return _report(
            client, claimed, config, files, job_log, None, None, None, started, stop, runs=runs + 1
        )
    if runs:
        job_log.write(
            f"the hardware site stopped while this job ran (run {runs}): run again from the start"
        )

    seed = _seed()
    try:
        for note in hardware_config.check(config.platform, claimed.job.get("hardware_config")):
            job_log.write(note)
        code = str(claimed.job["code"])
        job_log.write(
            workspace.prepare(
                code, files.job_dir, config.input_limits, queue_source=config.queue_source
            )
        )
        argv = command.build_argv(claimed.job.get("command"), config.platform, files.job_dir)
    except JobInputError as error:
        job_log.write(f"the job cannot run: {error}")
        job_log.close()
        return _report(
            client, claimed, config, files, job_log, None, None, seed, started, stop, runs=runs + 1
        )
    except Exception as error:
        # Ours, not the user's; still reported, or the job would stay `running` for good.
        log.exception("preparing the job failed", extra=extra)
        job_log.write(f"the emulator failed to prepare the job (internal error): {error!r}")
        job_log.close()
        return _report(
            client, claimed, config, files, job_log, None, None, seed, started, stop, runs=runs + 1
        )

    report_dir = files.job_dir / REPORT_DIR
    report_dir.mkdir(exist_ok=True)
    report_file = report_dir / "report.json"
    before = outputs.snapshot(files.job_dir)
    python_path = [config.overlay, *config.python_path]
    env = job_env(files.job_dir, report_file, seed, python_path)
    run = _Run()
    pump = threading.Thread(
        target=_pump,
        args=(client, claimed, config, job_log, stop, run),
        name=f"log-{claimed.id}",
        daemon=True,
    )
    pump.start()
    log.info("job started", extra={**extra, "argv": argv, "seed": seed})
    outcome: sandbox.Outcome | None
    try:
        outcome = sandbox.run(
            argv,
            files.job_dir,
            env,
            config.limits,
            job_log.output,
            python=config.python,
            read_only_paths=(*config.read_only_paths, *python_path),
            isolation=config.isolation,
            stop=run.kill,
        )
    except Exception as error:
        log.exception("the sandbox failed", extra=extra)
        job_log.write(f"the emulator failed to run the job (internal error): {error!r}")
        outcome = None
    finally:
        run.done.set()
        pump.join()
        job_log.close()
    if run.claim_lost.is_set():
        log.warning("claim lost while the job ran: stopped, nothing reported", extra=extra)
        _forget(files)
        return "claim-lost"
    if outcome is None:
        return _report(
            client, claimed, config, files, job_log, None, None, seed, started, stop, runs=runs + 1
        )
    report = _read_json(report_file)
    shutil.rmtree(report_dir, ignore_errors=True)  # private to the runner: not an output
    return _report(
        client,
        claimed,
        config,
        files,
        job_log,
        outcome,
        report,
        seed,
        started,
        stop,
        runs=runs + 1,
        before=before,
    )


def _report(
    client: QueueClient,
    claimed: ClaimedJob,
    config: RunnerConfig,
    files: JobFiles,
    job_log: JobLog,
    outcome: sandbox.Outcome | None,
    report: dict[str, Any] | None,
    seed: int | None,
    started: float,
    stop: threading.Event,
    *,
    runs: int,
    before: dict[str, tuple[int, int]] | None = None,
) -> str:
    wall = outcome.wall_seconds if outcome else 0.0
    ok = outcome is not None and outcome.ending == "exited" and outcome.exit_code == 0
    if outcome is not None:
        if stop.is_set() and outcome.ending == "stopped":
            job_log.write(
                "the hardware site shut down while the job ran: it was stopped; submit it again"
            )
            ok = False
        job_log.write(
            f"job {'finished' if ok else 'failed'}: {_ending(outcome)} "
            f"({outcome.wall_seconds:.1f} s wall, {outcome.cpu_seconds:.1f} s CPU)"
        )
    see = "the whole output"
    if job_log.dropped and (files.private / "output.log").exists():
        with contextlib.suppress(OSError):
            shutil.copyfile(files.private / "output.log", files.job_dir / FULL_OUTPUT_NAME)
        see = f"{FULL_OUTPUT_NAME} in the job's output files"

    listed: list[dict[str, object]] = []
    if before is not None:  # the job ran: what it created or changed
        collected = outputs.collect(files.job_dir, before, config.outputs_base_url, claimed.id)
        listed = collected.files
        if collected.omitted:
            job_log.write(f"{collected.omitted} more output files are not listed (too many)")

    provenance: dict[str, Any] = {}
    if report and isinstance(report.get("provenance"), dict):
        provenance.update(report["provenance"])
    provenance["emulator"] = {
        "name": "nmpi-emulator",
        "version": __version__,
        "platform": config.platform,
        "isolation": config.isolation,
    }
    # 1, unless the site stopped while the job ran and ran it again (the chaos suite checks).
    provenance["emulator"]["runs"] = runs
    if seed is not None:
        provenance.setdefault("seed", seed)
    if outcome is not None:
        provenance["sandbox"] = asdict(outcome)
    provenance["timings"] = {
        "queue_wait_s": claimed.queue_wait_seconds(),
        "run_s": round(time.monotonic() - started, 3),
    }
    body: dict[str, Any] = {
        "status": "finished" if ok else "error",
        "log": job_log.text(see),
        "output_data": {"repository": _repository(config), "files": listed},
        "provenance": provenance,
        "resource_usage": _usage(report, config.platform, wall),
    }
    saved = {"job_id": claimed.id, "claim": claimed.claim, "body": body}
    _write_json(files.pending, saved)
    deadline = config.stop_report_deadline if stop.is_set() else config.report_deadline
    return _deliver(client, files, saved, deadline)


def _forget(files: JobFiles) -> None:
    files.claim.unlink(missing_ok=True)
    files.pending.unlink(missing_ok=True)


def _deliver(client: QueueClient, files: JobFiles, saved: dict[str, Any], deadline: float) -> str:
    """The final PUT of a saved report: "finished"/"error" once the queue has it or it is kept
    pending; "claim-lost" when the job went to another holder (the report is dropped)."""
    body: dict[str, Any] = saved["body"]
    extra = {"job_id": files.job_id, "status": body.get("status")}
    try:
        client.update(files.job_id, saved.get("claim"), body, deadline=deadline)
    except ClaimLostError as error:
        log.warning("claim lost: report dropped", extra={**extra, "error": str(error)})
        _forget(files)
        return "claim-lost"
    except QueueRequestError as error:
        # Refused as it is (a bug of ours, or a limit): the status and log still matter most.
        log.error(
            "report refused, sending status and log only", extra={**extra, "error": str(error)}
        )
        body = {
            "status": "error",
            "log": f"{body.get('log', '')}\nthe emulator's report was refused: {error}\n"[
                -100_000:
            ],
        }
        try:
            client.update(files.job_id, saved.get("claim"), body, deadline=deadline)
        except QueueError as again:
            log.error("report refused, dropped", extra={**extra, "error": str(again)})
            _forget(files)
            return "error"
    except QueueError as error:
        log.warning(
            "report not delivered: kept pending",
            extra={**extra, "error": str(error), "file": str(files.pending)},
        )
        return str(body["status"])
    os.replace(files.pending, files.sent)
    files.claim.unlink(missing_ok=True)
    log.info("job reported", extra=extra)
    return str(body["status"])


def send_pending_reports(client: QueueClient, config: RunnerConfig) -> int:
    """Deliver the reports left pending (the queue was unreachable); how many were delivered.
    Stops at the first one the queue cannot take yet: the others wait for the next round."""
    delivered = 0
    for path in sorted(config.work_root.glob("*.report-pending.json")):
        saved = _read_json(path)
        job_id = path.name.split(".", 1)[0]
        if saved is None or not job_id.isdigit() or not isinstance(saved.get("body"), dict):
            continue
        files = JobFiles(config.work_root, int(job_id))
        with _active_lock:
            if (config.work_root, files.job_id) in _active:
                continue
            _active.add((config.work_root, files.job_id))
        try:
            outcome = _deliver(client, files, saved, config.pending_deadline)
        finally:
            with _active_lock:
                _active.discard((config.work_root, files.job_id))
        if files.pending.exists():
            break  # still unreachable
        if outcome != "claim-lost":
            delivered += 1
    return delivered


def interrupted_jobs(config: RunnerConfig) -> list[ClaimedJob]:
    """Jobs this site confirmed and started but never reported (the emulator stopped while they
    ran): to be run again with run_job. Their claims are held for good, so the queue would
    never hand them out again."""
    found = []
    for path in sorted(config.work_root.glob("*.claim.json")):
        record = _read_json(path)
        job_id = path.name.split(".", 1)[0]
        if record is None or not job_id.isdigit() or not isinstance(record.get("job"), dict):
            continue
        files = JobFiles(config.work_root, int(job_id))
        if files.pending.exists() or files.sent.exists():
            continue
        found.append(ClaimedJob(job=record["job"], claim=record.get("claim")))
    return found
