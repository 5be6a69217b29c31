"""nmpi-emulator: run an emulated SpiNNaker or BrainScaleS-2 hardware site against a job queue."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import start_http_server
from pythonjsonlogger.json import JsonFormatter

from . import __version__, sandbox, workspace
from .queue import QueueClient
from .runner import RunnerConfig, job_env, package_path
from .service import EmulatorService

log = logging.getLogger("nmpi_emulator")

SYSTEMS = {"spinnaker": "SpiNNaker", "brainscales": "BrainScaleS-2"}
SELFCHECK = "selfcheck"
REQUIRED = ("queue-url", "api-key-file", "work-root", "outputs-base-url")
ENV_PREFIX = "NMPI_EMULATOR_"
# Packaged beside the modules (a wheel), else platform/emulators/overlay (a source checkout).
_OVERLAYS = (
    Path(__file__).resolve().parent / "overlay",
    Path(__file__).resolve().parents[2] / "overlay",
)
DEFAULT_OVERLAY = next((p for p in _OVERLAYS if p.is_dir()), _OVERLAYS[-1])
SELFCHECK_SCRIPT = """\
import pyNN.spiNNaker as sim
sim.setup(timestep=1.0)
cells = sim.Population(10, sim.IF_curr_exp(i_offset=1.0))
cells.record("spikes")
sim.run(50.0)
print("selfcheck spikes:", sum(len(s) for s in cells.get_data().segments[0].spiketrains))
sim.end()
"""

DESCRIPTION = """\
An emulated neuromorphic hardware site. It works as the SpiNNaker and BrainScaleS-2 sites do:
it polls the job queue's public API with a provider API key (GET /jobs/next/{platform}), runs
each user's unmodified PyNN script on NEST in a sandbox (bubblewrap: no network, read-only
system, the job's folder its only writable place), streams the log to the job and reports its
outputs (URLs under --outputs-base-url), provenance and resource usage (core-hours or
chip-hours, charged to the collab's quota).

SIGTERM or SIGINT drains it: no new jobs; running ones get --drain-timeout seconds, then they
are stopped and reported as errors. Reports the queue cannot take (it is failing over) are kept
in --work-root and sent when it is back. Every option can also be set by an environment
variable: NMPI_EMULATOR_ and the option's name in capitals (--wall-time: NMPI_EMULATOR_WALL_TIME).
"""

EPILOG = """\
job limits (each job; the job ends in error with a line in its log saying which it hit):
  --cpu-seconds   CPU time of all its processes together; SIGXCPU, then it is killed
  --memory        address space of each process (RLIMIT_AS): a bigger allocation fails with
                  MemoryError. NEST reserves address space generously: keep it at 2G or more
  --disk          total size of its folder, and of its largest file
  --wall-time     real time from start to end, whatever it waits for
  --open-files    file descriptors per process
  --processes     processes at once (multiprocessing pools count)
  sizes take K, M, G (powers of 1024); durations s, m, h.

example:
  install -m 600 /dev/stdin /etc/nmpi-emulator/key <<< "$PROVIDER_KEY"
  nmpi-emulator spinnaker --queue-url https://nmpi.example.org \\
      --api-key-file /etc/nmpi-emulator/key --work-root /srv/nmpi-emulator/spinnaker \\
      --outputs-base-url https://emulator.example.org/spinnaker/outputs --workers 4 \\
      --memory 4G --wall-time 1h
"""


class UsageError(Exception):
    """A refused configuration: the message says why and what to do."""


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512M, 4G, 1048576)")
    scale = 1024 ** " kmgt".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * scale)


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 15m, 2h)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2).lower()]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"), default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmpi-emulator",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def option(name: str, default: str | None = None, **kwargs: object) -> None:
        # Required ones are checked by configure(): selfcheck needs none of them.
        required = " (required)" if name in REQUIRED else ""
        helptext = str(kwargs.pop("help", ""))
        var = ENV_PREFIX + name.upper().replace("-", "_")
        parser.add_argument(
            f"--{name}",
            default=_env(name, default),
            help=f"{helptext}{required} [{var}]" + (f" (default: {default})" if default else ""),
            **kwargs,  # type: ignore[arg-type]
        )

    parser.add_argument(
        "system",
        nargs="?",
        choices=[*sorted(SYSTEMS), SELFCHECK],
        default=_env("system"),
        help="which hardware site to be: spinnaker (platform SpiNNaker) or brainscales "
        "(platform BrainScaleS-2); selfcheck: run a tiny PyNN script in the sandbox with the "
        "given limits and exit 0 if it works (no queue needed) [NMPI_EMULATOR_SYSTEM]",
    )
    option("queue-url", help="the job queue's public base URL (https://)")
    option(
        "api-key-file",
        type=Path,
        help="file holding the provider API key; must not be readable by group or others",
    )
    option("work-root", type=Path, help="folder of the jobs' folders and reports")
    option(
        "outputs-base-url",
        help="URL under which --work-root's job folders are served (outputs are "
        "<this>/<job id>/<path>)",
    )
    option("ca-file", type=Path, help="CA bundle to check the queue's certificate with")
    option("workers", "4", type=positive_int, help="jobs run at once")
    option(
        "metrics-address",
        "127.0.0.1:9310",
        help="host:port of the Prometheus /metrics endpoint; 'off' for none",
    )
    option("cpu-seconds", "3600", type=positive_int, help="CPU time limit per job")
    option("memory", "4G", type=parse_size, help="address space limit per process")
    option("disk", "1G", type=parse_size, help="size limit of a job's folder")
    option("wall-time", "1h", type=parse_duration, help="real time limit per job")
    option("open-files", "256", type=positive_int, help="open file limit per process")
    option("processes", "32", type=positive_int, help="process limit per job")
    option("max-download", "100M", type=parse_size, help="largest code download (URL code)")
    option("max-unpacked", "500M", type=parse_size, help="largest unpacked code archive")
    option("max-input-files", "10000", type=positive_int, help="most files in a code archive")
    option("download-timeout", "60", type=parse_duration, help="time limit to fetch the code")
    option(
        "isolation",
        "bwrap",
        choices=["bwrap", "none"],
        help="bwrap: each job in a bubblewrap sandbox; none: jobs run as this service's user, "
        "with its network and files (only for development, with the flag below)",
    )
    parser.add_argument(
        "--i-know-jobs-run-unconfined",
        action="store_true",
        default=(_env("i-know-jobs-run-unconfined") or "").lower() in {"1", "true", "yes"},
        help="allow --isolation none [NMPI_EMULATOR_I_KNOW_JOBS_RUN_UNCONFINED=1]",
    )
    option("python", sys.executable, help="interpreter the jobs run with (PyNN and NEST)")
    option("overlay", str(DEFAULT_OVERLAY), type=Path, help="the front-ends' import overlay folder")
    option("drain-timeout", "300", type=parse_duration, help="time running jobs get on SIGTERM")
    option(
        "report-deadline",
        "600",
        type=parse_duration,
        help="how long a final report is retried before it is kept pending",
    )
    option("request-timeout", "30", type=parse_duration, help="time limit of one HTTP request")
    option("log-format", "json", choices=["json", "text"], help="the service's own log")
    option("log-level", "INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="")
    parser.add_argument("--version", action="version", version=f"nmpi-emulator {__version__}")
    return parser


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(threadName)s %(message)s",
                rename_fields={
                    "asctime": "time",
                    "levelname": "level",
                    "name": "logger",
                    "threadName": "thread",
                },
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per poll otherwise


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UsageError(f"--{name} must be an http(s) URL, not {url!r}")
    if name == "queue-url" and parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise UsageError(
            f"--queue-url {url} is plain http to another host: the API key would cross the "
            "network in clear. Use https:// (with --ca-file for a private CA)"
        )
    return url.rstrip("/")


def read_key(path: Path) -> str:
    try:
        info = path.stat()
    except OSError as error:
        raise UsageError(f"--api-key-file {path}: {error.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"--api-key-file {path} is readable by group or others "
            f"(mode {stat.filemode(info.st_mode)}): run chmod 600 {path}"
        )
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise UsageError(f"--api-key-file {path} is empty")
    return key


def _prefix_of(python: str) -> Path:
    """The job interpreter's installation (a venv), which the sandbox binds read-only."""
    if python == sys.executable:
        return Path(sys.prefix)
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(sys.prefix)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise UsageError(f"--python {python} cannot be run: {error}") from None
    return Path(done.stdout.strip())


def _metrics_address(text: str) -> tuple[str, int] | None:
    if text.lower() == "off":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--metrics-address {text!r}: expected host:port or 'off'")
    return host.strip("[]") or "127.0.0.1", int(port)


def configure(args: argparse.Namespace) -> tuple[QueueClient, RunnerConfig, EmulatorService]:
    if args.system is None:
        raise UsageError("which system: spinnaker or brainscales")
    for name in REQUIRED:
        if getattr(args, name.replace("-", "_")) is None:
            var = ENV_PREFIX + name.upper().replace("-", "_")
            raise UsageError(f"--{name} (or {var}) is required")
    if args.isolation == "none" and not args.i_know_jobs_run_unconfined:
        raise UsageError(
            "--isolation none runs users' code with this service's rights, its network and its "
            "files (the API key among them); add --i-know-jobs-run-unconfined to do so anyway"
        )
    queue_url = check_url("queue-url", args.queue_url)
    outputs_url = check_url("outputs-base-url", args.outputs_base_url)
    key = read_key(args.api_key_file)
    if args.ca_file is not None and not args.ca_file.is_file():
        raise UsageError(f"--ca-file {args.ca_file} is not a file")
    if not args.overlay.is_dir():
        raise UsageError(f"--overlay {args.overlay} is not a folder")
    work_root = args.work_root.resolve()
    work_root.mkdir(parents=True, exist_ok=True)
    limits = _limits(args)
    verify: str | bool = str(args.ca_file) if args.ca_file else True
    input_limits = workspace.InputLimits(
        max_download_bytes=args.max_download,
        max_unpacked_bytes=args.max_unpacked,
        max_files=args.max_input_files,
        timeout_seconds=args.download_timeout,
    )
    config = RunnerConfig(
        platform=SYSTEMS[args.system],
        work_root=work_root,
        outputs_base_url=outputs_url,
        python=args.python,
        overlay=args.overlay.resolve(),
        read_only_paths=(_prefix_of(args.python),),
        limits=limits,
        input_limits=input_limits,
        isolation=args.isolation,
        report_deadline=args.report_deadline,
        python_path=package_path(),
        queue_source=workspace.QueueSource(queue_url, key, verify),
    )
    client = QueueClient(
        queue_url,
        key,
        verify=verify,
        timeout=args.request_timeout,
    )
    service = EmulatorService(
        client, config, workers=args.workers, drain_timeout=args.drain_timeout
    )
    return client, config, service


def _limits(args: argparse.Namespace) -> sandbox.Limits:
    return sandbox.Limits(
        cpu_seconds=args.cpu_seconds,
        memory_bytes=args.memory,
        disk_bytes=args.disk,
        open_files=args.open_files,
        wall_seconds=args.wall_time,
        processes=args.processes,
    )


def _echo(data: bytes) -> None:
    sys.stdout.buffer.write(data)


def selfcheck(args: argparse.Namespace) -> int:
    """A tiny PyNN script through the real sandbox with the configured limits: does this host
    (container) let bubblewrap make its namespaces, and is --memory enough for NEST?"""
    if args.isolation == "none" and not args.i_know_jobs_run_unconfined:
        print(
            "nmpi-emulator: error: selfcheck checks the sandbox: --isolation bwrap", file=sys.stderr
        )
        return 2
    python_path = [args.overlay.resolve(), *package_path()]
    with tempfile.TemporaryDirectory(prefix="nmpi-emulator-selfcheck-") as tmp:
        job_dir = Path(tmp)
        (job_dir / "run.py").write_text(SELFCHECK_SCRIPT, encoding="utf-8")
        report_dir = job_dir / ".nmpi-emulator"
        report_dir.mkdir()
        outcome = sandbox.run(
            ["run.py"],
            job_dir,
            job_env(job_dir, report_dir / "report.json", 1, python_path),
            _limits(args),
            _echo,
            python=args.python,
            read_only_paths=(_prefix_of(args.python), *python_path),
            isolation=args.isolation,
        )
        sys.stdout.flush()
        reported = (report_dir / "report.json").is_file()
    ok = outcome.ending == "exited" and outcome.exit_code == 0 and reported
    print(
        f"selfcheck {'passed' if ok else 'FAILED'}: {outcome.message} "
        f"({outcome.wall_seconds:.1f} s wall, {outcome.cpu_seconds:.1f} s CPU, "
        f"isolation {args.isolation}, memory {args.memory} bytes"
        f"{'' if reported or outcome.exit_code != 0 else ', no report file'})",
        file=sys.stdout if ok else sys.stderr,
    )
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error argparse printed
        return int(exit_.code or 0)
    if args.system == SELFCHECK:
        try:
            return selfcheck(args)
        except UsageError as error:
            print(f"nmpi-emulator: error: {error}", file=sys.stderr)
            return 2
    try:
        metrics = _metrics_address(args.metrics_address)
        client, config, service = configure(args)
    except UsageError as error:
        print(f"nmpi-emulator: error: {error}", file=sys.stderr)
        return 2
    configure_logging(args.log_level, args.log_format)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal received: draining", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, on_signal)
    try:
        if metrics is not None:
            try:
                start_http_server(metrics[1], addr=metrics[0])
            except OSError as error:
                print(
                    f"nmpi-emulator: error: --metrics-address {args.metrics_address}: {error}",
                    file=sys.stderr,
                )
                return 2
        log.info(
            "configuration",
            extra={
                "platform": config.platform,
                "queue": client.base_url,
                "work_root": str(config.work_root),
                "isolation": config.isolation,
                "limits": dataclasses.asdict(config.limits),
                "metrics": args.metrics_address,
            },
        )
        service.start()
        while not stop.wait(1.0):
            pass
        service.drain()
    finally:
        client.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
