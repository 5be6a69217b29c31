"""Helpers for the emulator's tests: the job queue's test fixtures and helpers, a queue cleaner,
a TCP proxy to take the queue away and bring it back, a stand-in for the queue's stored code
archives, a runner configuration, job submission.

platform/job_queue/tests/conftest.py is a module named `conftest` too: it is loaded under
another name, so that the two do not collide in sys.modules. Its directory goes on sys.path for
`pg_harness`, which it imports.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
JOB_QUEUE_TESTS = ROOT / "platform" / "job_queue" / "tests"
for entry in (HERE.parent / "src", JOB_QUEUE_TESTS):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

# Importable only once src/ is on sys.path (the package is not installed in every venv).
import httpx  # noqa: E402
import nmpi  # noqa: E402
from nmpi_emulator.runner import RunnerConfig, package_path  # noqa: E402
from nmpi_emulator.sandbox import Limits  # noqa: E402
from nmpi_emulator.workspace import InputLimits  # noqa: E402
from nmpi_lab.processes import free_port  # noqa: E402

T = TypeVar("T")
PLATFORM = "SpiNNaker"


def job_queue_fixtures() -> ModuleType:
    name = "nmpi_job_queue_test_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, JOB_QUEUE_TESTS / "conftest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_jq = job_queue_fixtures()

# Helpers for tests that start servers of their own (typed here: the module is loaded untyped).
Account: Any = _jq.Account
start_server: Callable[..., tuple[subprocess.Popen[bytes], str]] = _jq.start_server
stop_server: Callable[[subprocess.Popen[bytes]], None] = _jq.stop_server


def run_admin(database_url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    result: T = _jq.run_admin(database_url, work)
    return result


def clear_queue(base_url: str, api_key: str, platform: str) -> int:
    """End every job waiting on `platform` (left by earlier tests on the shared server), so that
    a test's polls get its own jobs. Returns how many."""
    cleared = 0
    with httpx.Client(base_url=base_url, headers={"x-api-key": api_key}, timeout=30) as http:
        while (reply := http.get(f"/jobs/next/{platform}")).status_code == 200:
            job = reply.json()
            http.put(
                f"/jobs/{job['id']}",
                json={"status": "error", "log": "cleared by the emulator tests"},
                headers={"X-NMPI-Claim": reply.headers["X-NMPI-Claim"]},
            ).raise_for_status()
            cleared += 1
        assert reply.status_code == 404, reply.text
    return cleared


class TcpProxy:
    """A TCP forwarder on loopback in front of the job-queue server: stop() is the queue going
    away for its sites (connections refused, open ones cut), start() it coming back on the
    same address; much quicker than restarting the server."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: Any = None
        self._open: list[Any] = []

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: Any) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(2)

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(2)
            self._listener.close()
            self._listener = None
        for s in self._open:
            with contextlib.suppress(OSError):
                s.shutdown(2)
            s.close()
        self._open.clear()


class ArchiveServer:
    """An http server on 127.0.0.1 standing in for the job queue's GET /code-archives/...: it
    answers `files` by request path (query included), those in `keyed` only to a request with
    that x-api-key (404 otherwise, as the queue does), and `redirects` with a 302 there. Each
    request's (path, x-api-key or None) is appended to `requests`."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.keyed: dict[str, str] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                key = self.headers.get("x-api-key")
                owner.requests.append((self.path, key))
                if self.path in owner.redirects:
                    self.send_response(302)
                    self.send_header("Location", owner.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = owner.files.get(self.path)
                required = owner.keyed.get(self.path)
                if body is None or (required is not None and key != required):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self) -> ArchiveServer:
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


def make_config(work_root: Path, **changes: Any) -> RunnerConfig:
    """The runner as the tests run it: this venv's Python in bwrap, quick log PATCHes."""
    settings: dict[str, Any] = {
        "platform": PLATFORM,
        "work_root": work_root,
        "outputs_base_url": "https://emulator.test/spinnaker",
        "python": sys.executable,
        "overlay": ROOT / "platform" / "emulators" / "overlay",
        "read_only_paths": (Path(sys.prefix),),
        "limits": Limits(
            cpu_seconds=120,
            memory_bytes=8 * 2**30,
            disk_bytes=100 * 2**20,
            open_files=256,
            wall_seconds=120,
            processes=32,
        ),
        "input_limits": InputLimits(),
        "isolation": "bwrap",
        "log_patch_interval": 0.3,
        "report_deadline": 20.0,
        "python_path": package_path(),
        **changes,
    }
    return RunnerConfig(**settings)


def submit(user: tuple[Any, nmpi.Client], code: str, platform: str = PLATFORM, **extra: Any) -> int:
    """Submit `code` to `platform` (SpiNNaker) with the unmodified nmpi client; the job's id."""
    account, client = user
    uri = client.submit_job(source=code, platform=platform, collab_id=account.collab, **extra)
    return int(str(uri).rstrip("/").rsplit("/", 1)[-1])


# --- front-end scripts (test_frontends.py) -------------------------------------------------
# `run_script` runs a user's script as the runner would: a fresh Python with the overlay first
# on PYTHONPATH and NMPI_EMULATOR_REPORT pointing into the test's folder.

OVERLAY = HERE.parent / "overlay"


@dataclass
class ScriptRun:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    workdir: Path
    report: dict[str, Any] | None


RunScript = Callable[..., ScriptRun]


def run_script(
    tmp_path: Path, code: str, *, report: bool = True, seed: int | None = 1234
) -> ScriptRun:
    """Run `code` as run.py in a fresh folder under `tmp_path`, as the runner would: a fresh
    Python with the overlay first on PYTHONPATH; `report=False` leaves NMPI_EMULATOR_REPORT
    unset."""
    workdir = tmp_path / f"job{len(list(tmp_path.iterdir()))}"
    workdir.mkdir()
    (workdir / "run.py").write_text(code)
    report_file = tmp_path / f"{workdir.name}-report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NMPI_EMULATOR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(OVERLAY), str(HERE.parent / "src")])
    env["MPLBACKEND"] = "Agg"
    if report:
        env["NMPI_EMULATOR_REPORT"] = str(report_file)
    if seed is not None:
        env["NMPI_EMULATOR_SEED"] = str(seed)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "run.py"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = time.monotonic() - start
    parsed = json.loads(report_file.read_text()) if report_file.exists() else None
    return ScriptRun(done.returncode, done.stdout, done.stderr, wall, workdir, parsed)
