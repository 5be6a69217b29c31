"""Server processes on this machine, started, awaited and stopped one way: the lab's services
(nmpi_devstack's supervisor) and the servers the test suites start on loopback (BIND9 and etcd
for nmpi-failover, the job-queue server) alike.

    port = free_port()
    process = start(["named", "-g", ...], log)            # stdin /dev/null, output to the log
    wait_until(check, 15, "named", process=process, log=log)  # health, exit, deadline
    ...
    stop(process)                                          # SIGTERM, SIGKILL after the timeout

A child never gets the caller's stdin (Ansible refuses to start when a child left a shared
stream non-blocking), and a failure names the log to read.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class ServerExitedError(RuntimeError):
    """The process exited before its health check passed."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at `host` right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start(
    argv: Sequence[str | os.PathLike[str]],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    new_session: bool = False,
    header: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` with stdin from /dev/null and stdout and stderr appended to `log` (after
    `header`, when given). `new_session`: its own session (setsid), so that everything it
    forks can be signalled by session id; `env`: the whole environment (None: the caller's)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        if header is not None:
            out.write(header.encode())
            out.flush()
        return subprocess.Popen(
            [os.fspath(arg) for arg in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=new_session,
            close_fds=True,
        )


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `check` until it passes. Raise ServerExitedError as soon as `process` (when given) has
    exited, TimeoutError after `timeout` seconds; both name `what` and `log`."""
    deadline = time.monotonic() + timeout
    see = f"; see {log}" if log is not None else ""
    while True:
        if process is not None and process.poll() is not None:
            raise ServerExitedError(f"{what} exited with {process.returncode}{see}")
        if check():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not ready within {timeout:g} s{see}")
        time.sleep(interval)


def http_ok(url: str, *, timeout: float = 1.0, verify: ssl.SSLContext | bool = True) -> bool:
    """Whether `url` answers 200 now (no proxy: these servers are on this machine)."""
    import httpx  # only the HTTP checks need it

    try:
        return httpx.get(url, timeout=timeout, verify=verify, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def stop(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Send `sig` (SIGTERM) to a process that still runs and reap it; SIGKILL after `timeout`."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log (of its last 64 KiB), for a failure message."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
