"""Starting, watching and stopping the lab's processes, without systemd.

Each process runs detached in its own session (setsid): its pid is also its session id, so
`down` can signal everything the process forked (uWSGI workers, oslo.service children) and
nothing else. A pid file holds "<pid> <start time>": a pid reused by an unrelated process is
never mistaken for the lab's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nmpi_lab.processes import start as start_process
from nmpi_lab.processes import tail

from .checks import Check
from .paths import Paths


class LabError(RuntimeError):
    """A step of the lab failed; the message names the service and its log."""


@dataclass(frozen=True)
class ProcSpec:
    name: str  # also the log (logs/<name>.log) and pid file (run/<name>.pid) name
    argv: tuple[str, ...]
    group: str  # "infra", "shared" or a region name
    env: Mapping[str, str] = field(default_factory=dict)
    check: Check | None = None  # readiness and health; None: being alive is enough
    check_desc: str = ""
    ready_timeout: float = 180.0
    config_dir: Path | None = None  # its configuration: a change restarts it at the next `up`


# A process without a health check is "ready" once it survived this long (config errors and
# missing modules make oslo.service programs exit within a second or two).
MIN_ALIVE = 3.0

ReadyCallback = Callable[[ProcSpec, float], None]


@dataclass(frozen=True)
class PidInfo:
    pid: int
    start_time: int


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 is the state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def read_pid(paths: Paths, name: str) -> PidInfo | None:
    try:
        pid, started = paths.pidfile(name).read_text().split()
        return PidInfo(int(pid), int(started))
    except (OSError, ValueError):
        return None


def is_alive(info: PidInfo | None) -> bool:
    if info is None:
        return False
    fields = _proc_stat(info.pid)
    if fields is None:
        return False
    return fields[0] not in ("Z", "X") and int(fields[19]) == info.start_time


def session_members(sid: int) -> list[int]:
    """Live processes of the session a lab process leads (itself and what it forked)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        # fields: 0 state, 1 ppid, 2 pgrp, 3 session
        if fields and int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def config_hash(directory: Path | None) -> str:
    """Fingerprint of the files directly in a configuration directory."""
    if directory is None or not directory.is_dir():
        return ""
    digest = hashlib.sha256()
    for f in sorted(p for p in directory.iterdir() if p.is_file()):
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


class Supervisor:
    def __init__(self, paths: Paths, base_env: Mapping[str, str]) -> None:
        self.paths = paths
        self.base_env = dict(base_env)
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._started: dict[str, float] = {}
        self._started_wall: dict[str, float] = {}

    def start(self, spec: ProcSpec) -> int:
        child = start_process(
            spec.argv,
            self.paths.log(spec.name),
            env={**self.base_env, **spec.env},
            cwd=self.paths.home,
            new_session=True,  # its session id is its pid: `stop` signals what it forked
            header=f"\n===== nmpi-devstack {time.strftime('%Y-%m-%d %H:%M:%S')} starting: "
            f"{' '.join(spec.argv)}\n",
        )
        self._children[spec.name] = child
        self._started[spec.name] = time.monotonic()
        self._started_wall[spec.name] = time.time()
        started = start_time(child.pid)
        self.paths.pidfile(spec.name).write_text(f"{child.pid} {started or 0}\n")
        self._hashfile(spec.name).write_text(config_hash(spec.config_dir) + "\n")
        return child.pid

    def started_at(self, name: str) -> float | None:
        """When this supervisor started the process (epoch seconds); None: not by it."""
        return self._started_wall.get(name)

    def _hashfile(self, name: str) -> Path:
        return self.paths.run / f"{name}.config"

    def config_changed(self, spec: ProcSpec) -> bool:
        """Whether the configuration changed since the running process was started."""
        try:
            started_with = self._hashfile(spec.name).read_text().strip()
        except OSError:
            return False
        return started_with != config_hash(spec.config_dir)

    def alive(self, name: str) -> bool:
        child = self._children.get(name)
        if child is not None and child.poll() is not None:
            return False  # reaped: ours, and gone
        return is_alive(read_pid(self.paths, name))

    def failure(self, spec: ProcSpec, reason: str) -> LabError:
        log = self.paths.log(spec.name)
        return LabError(
            f"{spec.name}: {reason}\n  log: {log}\n  last lines:\n"
            + "\n".join("    " + line for line in tail(log).splitlines())
        )

    def wait_ready(self, specs: Iterable[ProcSpec], on_ready: ReadyCallback | None = None) -> None:
        """Poll every spec until its check passes; fail fast if a process dies."""
        pending = {s.name: s for s in specs}
        begin = time.monotonic()
        while pending:
            for name, spec in list(pending.items()):
                if not self.alive(name):
                    raise self.failure(spec, "exited while starting")
                if spec.check:
                    reason = spec.check()
                elif time.monotonic() - self._started.get(name, 0.0) < MIN_ALIVE:
                    reason = "just started"  # no check: it must at least survive its start-up
                else:
                    reason = None
                if reason is None:
                    del pending[name]
                    if on_ready:
                        on_ready(spec, time.monotonic() - begin)
                elif time.monotonic() - begin > spec.ready_timeout:
                    raise self.failure(
                        spec, f"not ready after {spec.ready_timeout:.0f} s: {reason}"
                    )
            if pending:
                time.sleep(0.5)

    def stop(self, names: Iterable[str], timeout: float = 30.0) -> list[str]:
        """Stop processes: SIGTERM to each leader (uWSGI's master, oslo.service's parent stop
        their children themselves), SIGTERM to every member of its session after half the
        timeout, SIGKILL to what remains at the timeout. Returns the names SIGKILLed."""
        sessions: dict[str, int] = {}
        for name in names:
            info = read_pid(self.paths, name)
            if info is None:
                continue
            # the leader may be gone while its children still run: the session id remains
            if session_members(info.pid) and (is_alive(info) or not _proc_stat(info.pid)):
                sessions[name] = info.pid
            else:
                self._forget(name)
        for sid in sessions.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(sid, signal.SIGTERM)
        begin = time.monotonic()
        escalated = False
        while any(session_members(s) for s in sessions.values()):
            elapsed = time.monotonic() - begin
            if elapsed >= timeout:
                break
            if not escalated and elapsed >= timeout / 2:
                _signal_sessions(sessions.values(), signal.SIGTERM)
                escalated = True
            self._reap()
            time.sleep(0.2)
        killed = [name for name, sid in sessions.items() if session_members(sid)]
        _signal_sessions((sessions[n] for n in killed), signal.SIGKILL)
        for name in sessions:
            self._forget(name)
        self._reap()
        return killed

    def _forget(self, name: str) -> None:
        self.paths.pidfile(name).unlink(missing_ok=True)
        self._hashfile(name).unlink(missing_ok=True)

    def _reap(self) -> None:
        for child in self._children.values():
            child.poll()


def _signal_sessions(sids: Iterable[int], sig: signal.Signals) -> None:
    for sid in sids:
        for pid in session_members(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
