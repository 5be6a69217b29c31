"""Run a job's Python command in bubblewrap under CPU, memory, disk, file, process and wall limits.

The job runs as `python -u <argv...>` in its folder. Its stdout and stderr are merged and handed to
`on_output` as they come. `run` says which limit, if any, ended it (`Outcome.ending`) with a line
for the job's log (`Outcome.message`).

How each limit is enforced:

- rlimits are set by util-linux `prlimit`, which sets them on itself and then execs bwrap (or the
  interpreter): no `preexec_fn`, which is unsafe in the service's multi-threaded process.
  RLIMIT_AS = memory, RLIMIT_CPU = cpu (SIGXCPU, then SIGKILL 2 s later), RLIMIT_FSIZE = disk (no
  single file can be larger), RLIMIT_NOFILE = open files, RLIMIT_CORE = 0 (no core files in the
  job's folder, whose contents are reported as outputs).
- A watchdog (every 0.5 s) adds up the job's files, the CPU time of its whole process tree (an
  rlimit is per process) and counts its processes. RLIMIT_NPROC is not used: it counts every
  process of the user (the service's threads, the other jobs), and root ignores it. The watchdog
  catches a job that starts too many processes; it cannot stop a fast fork bomb within 0.5 s, so
  the service unit should also cap its tasks (systemd `TasksMax=`).
- Wall time and the stop event: SIGTERM to the job's processes, SIGKILL 2 s later.
- At the end the whole process group is killed; under bwrap killing bwrap tears down the job's
  pid namespace, which kills every process in it, including ones that left the process group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Ending = Literal[
    "exited", "signalled", "wall-time", "cpu-time", "memory", "disk", "processes", "stopped"
]

_POLL_SECONDS = 0.1
_WATCH_SECONDS = 0.5
_GRACE_SECONDS = 2.0
_TAIL_BYTES = 8192
# Written by Python's MemoryError (numpy's _ArrayMemoryError too) and C++'s std::bad_alloc.
_MEMORY_MARKERS = (b"MemoryError", b"std::bad_alloc", b"Cannot allocate memory")
# Python ignores SIGXFSZ, so RLIMIT_FSIZE shows as OSError EFBIG.
_DISK_MARKERS = (b"[Errno 27] File too large", b"[Errno 28] No space left on device")
# The system the interpreter needs, read-only; /bin, /lib... are symlinks on merged-/usr systems.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_FILES = (
    "/etc/ld.so.cache",  # the dynamic loader finds NEST's and numpy's libraries quickly
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",  # datetime.now() in the user's time zone
    "/etc/fonts",  # matplotlib text
    "/etc/mime.types",
)
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int
    memory_bytes: int  # address space (RLIMIT_AS), not resident memory
    disk_bytes: int  # total size of the job's folder; also the largest single file
    open_files: int
    wall_seconds: float
    processes: int  # processes the job may have at once (threads not counted)


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None: ended by a signal
    ending: Ending
    message: str
    cpu_seconds: float
    wall_seconds: float


def run(
    argv: list[str],
    job_dir: Path,
    env: Mapping[str, str],
    limits: Limits,
    on_output: Callable[[bytes], None],
    *,
    python: str,
    read_only_paths: Sequence[Path],
    isolation: Literal["bwrap", "none"] = "bwrap",
    stop: threading.Event | None = None,
) -> Outcome:
    """Run `python -u *argv` in `job_dir` until it ends or a limit stops it."""
    job_dir = job_dir.resolve(strict=True)
    # Not the venv's bin: with nest-config on PATH, PyNN runs cmake to build NEST extensions
    # in the job's folder (seen: a _build folder and CMake errors in the log).
    job_env = {"PATH": "/usr/bin:/bin", **env, "HOME": str(job_dir)}
    command = [python, "-u", *argv]
    if isolation == "bwrap":
        command = _bwrap_argv(job_dir, job_env, limits, python, read_only_paths) + command
        popen_env = {"PATH": "/usr/bin:/bin"}  # bwrap --clearenv sets the job's own
        wrappers = 2  # bwrap and its pid-1 reaper are in the process tree, not the job's
    else:
        popen_env = job_env
        wrappers = 0
    command = _prlimit_argv(limits) + command
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=job_dir,
        env=popen_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, killed as one at the end
        close_fds=True,
    )
    assert process.stdout is not None
    reader = _Reader(process.stdout.fileno(), on_output)
    reader.start()
    reason: Ending | None = None
    peak_disk = 0
    tree_cpu = 0.0
    status = -1
    rusage_cpu = 0.0
    reaped = False
    try:
        next_watch = started
        while True:
            pid, status, rusage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                rusage_cpu = rusage.ru_utime + rusage.ru_stime
                reaped = True
                break
            now = time.monotonic()
            if reader.failed or (stop is not None and stop.is_set()):
                reason = "stopped"
            elif now - started > limits.wall_seconds:
                reason = "wall-time"
            elif now >= next_watch:
                next_watch = now + _WATCH_SECONDS
                peak_disk = max(peak_disk, folder_size(job_dir))
                tree = _process_tree(process.pid)
                tree_cpu = max(tree_cpu, sum(cpu for _, cpu in tree))
                if peak_disk > limits.disk_bytes:
                    reason = "disk"
                elif tree_cpu > limits.cpu_seconds:
                    reason = "cpu-time"
                elif len(tree) - wrappers > limits.processes:
                    reason = "processes"
            if reason is not None:
                status, rusage_cpu = _terminate(process.pid)
                reaped = True
                break
            if stop is not None:
                stop.wait(_POLL_SECONDS)
            else:
                time.sleep(_POLL_SECONDS)
    finally:
        if not reaped:  # an exception in this thread: the job must not outlive run()
            _kill_tree(process.pid)
            _, status, _ = os.wait4(process.pid, 0)
        process.returncode = status  # reaped by wait4; keeps Popen from waiting again
        # The group only: once reaped, the pid may be another process's, but a process
        # group id is not reused while the group has members (left-behind children).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        reader.join(timeout=5.0)
        process.stdout.close()
    if reader.error is not None:
        raise reader.error
    wall = time.monotonic() - started
    cpu = max(rusage_cpu, tree_cpu)
    peak_disk = max(peak_disk, folder_size(job_dir))
    exit_code, sig = _decode(status, isolation)
    if reason is None:
        reason = _classify(exit_code, sig, cpu, peak_disk, limits, reader.tail)
    message = _message(reason, exit_code, sig, limits, cpu, peak_disk)
    return Outcome(exit_code, reason, message, round(cpu, 3), round(wall, 3))


def folder_size(folder: Path) -> int:
    """Apparent size of the regular files under `folder` (symlinks not followed)."""
    total = 0
    stack = [str(folder)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue  # removed while we looked, or made unreadable by the job
        with entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
    return total


def _prlimit_argv(limits: Limits) -> list[str]:
    prlimit = shutil.which("prlimit") or "/usr/bin/prlimit"
    cpu = limits.cpu_seconds
    return [
        prlimit,
        f"--as={limits.memory_bytes}",
        # SIGXCPU at the soft limit; SIGKILL at the hard one if the job ignores SIGXCPU.
        f"--cpu={cpu}:{cpu + 2}",
        f"--fsize={limits.disk_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]


def _bwrap_argv(
    job_dir: Path,
    env: Mapping[str, str],
    limits: Limits,
    python: str,
    read_only_paths: Sequence[Path],
) -> list[str]:
    argv = [
        shutil.which("bwrap") or "/usr/bin/bwrap",
        # New user, pid, network, ipc, uts and cgroup namespaces: no network but a private
        # loopback, no view of the host's processes.
        "--unshare-all",
        # A user namespace even when the service runs as root, as uid/gid 65534 (nobody), and no
        # nested ones: one less way out.
        "--unshare-user",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--disable-userns",
        # Run by root, bwrap leaves the job all capabilities (seen: CapEff 1fffeffffff), enough to
        # remount the read-only binds writable.
        "--cap-drop",
        "ALL",
        # The job dies with the service.
        "--die-with-parent",
        # setsid(): the job cannot inject input into the service's terminal (TIOCSTI).
        "--new-session",
        # Before the binds: job_dir may be under /tmp. Sized, as tmpfs is memory RLIMIT_AS misses.
        "--size",
        str(limits.disk_bytes),
        "--tmpfs",
        "/tmp",
    ]
    for name in _SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            argv += ["--ro-bind", name, name]
    for name in _SYSTEM_FILES:
        argv += ["--ro-bind-try", name, name]
    # The interpreter's own installation (a venv's python links to it), wherever it lives.
    prefix = Path(os.path.realpath(python)).parent.parent
    if not prefix.is_relative_to("/usr"):
        argv += ["--ro-bind", str(prefix), str(prefix)]
    for path in read_only_paths:
        argv += ["--ro-bind", str(path), str(path)]
    argv += [
        "--bind",
        str(job_dir),
        str(job_dir),  # the only writable place that outlives the job
        "--proc",
        "/proc",  # of the new pid namespace: only the job's processes
        "--dev",
        "/dev",  # null, zero, urandom, tty... no host devices
        "--size",
        str(limits.disk_bytes),
        "--tmpfs",
        "/dev/shm",  # multiprocessing needs it; sized like /tmp
        # bwrap's root is an unsized tmpfs (in memory): no writing there, nor in the folders
        # bwrap made for the binds (/etc...). Mounts on top (/tmp, job_dir) stay writable.
        "--remount-ro",
        "/",
        "--chdir",
        str(job_dir),
        "--clearenv",  # nothing of the service's environment (its API key) reaches the job
    ]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv.append("--")
    return argv


class _Reader(threading.Thread):
    """Hands the job's output to on_output as it comes and keeps its last bytes."""

    def __init__(self, fd: int, on_output: Callable[[bytes], None]) -> None:
        super().__init__(name="sandbox-output", daemon=True)
        self._fd = fd
        self._on_output = on_output
        self.tail = b""
        self.error: BaseException | None = None
        self.failed = False

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.tail = (self.tail + chunk)[-_TAIL_BYTES:]
            if self.error is None:
                try:
                    self._on_output(chunk)
                except Exception as error:  # re-raised by run() once the job is stopped
                    self.error = error
                    self.failed = True
            # After a failure keep draining: a full pipe would block the job forever.


def _process_tree(root: int) -> list[tuple[int, float]]:
    """(pid, CPU seconds including reaped children) of root and its descendants, from /proc."""
    parent_of: dict[int, int] = {}
    cpu_of: dict[int, float] = {}
    for pid, fields in _proc_stats():
        parent_of[pid] = int(fields[1])
        # utime, stime, cutime, cstime (fields 14-17 of proc_pid_stat(5)), in clock ticks
        cpu_of[pid] = sum(int(value) for value in fields[11:15]) / _CLK_TCK
    children: dict[int, list[int]] = {}
    for pid, parent in parent_of.items():
        children.setdefault(parent, []).append(pid)
    tree: list[tuple[int, float]] = []
    stack = [root] if root in parent_of else []
    while stack:
        pid = stack.pop()
        tree.append((pid, cpu_of[pid]))
        stack.extend(children.get(pid, ()))
    return tree


def _proc_stats() -> Iterator[tuple[int, list[str]]]:
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                stat = file.read().decode("ascii", "replace")
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        yield int(name), stat[stat.rfind(")") + 2 :].split()


def _terminate(pid: int) -> tuple[int, float]:
    """SIGTERM the job's processes, SIGKILL all after a grace; returns wait4's status and CPU."""
    for child, _ in _process_tree(pid)[1:]:
        # Under bwrap the job runs in a pid namespace as a child of bwrap; SIGTERM to bwrap
        # itself would not reach it gracefully, so signal the descendants directly.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGTERM)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_SECONDS
    while time.monotonic() < deadline:
        done, status, rusage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, rusage.ru_utime + rusage.ru_stime
        time.sleep(_POLL_SECONDS)
    _kill_tree(pid)
    _, status, rusage = os.wait4(pid, 0)
    return status, rusage.ru_utime + rusage.ru_stime


def _kill_tree(pid: int) -> None:
    """SIGKILL pid (not yet reaped: the number is still its own), its descendants and group."""
    for child, _ in _process_tree(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _decode(status: int, isolation: str) -> tuple[int | None, int | None]:
    """(exit code, signal) from a wait status; bwrap reports a child's signal as 128 + signal."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    code = os.waitstatus_to_exitcode(status) if status >= 0 else -1
    if isolation == "bwrap" and 128 < code < 128 + signal.NSIG:
        return None, code - 128
    return code, None


def _classify(
    exit_code: int | None,
    sig: int | None,
    cpu: float,
    disk: int,
    limits: Limits,
    tail: bytes,
) -> Ending:
    if disk > limits.disk_bytes or sig == signal.SIGXFSZ:
        return "disk"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits.cpu_seconds):
        return "cpu-time"
    if exit_code == 0:
        return "exited"
    if any(marker in tail for marker in _MEMORY_MARKERS):
        return "memory"
    if any(marker in tail for marker in _DISK_MARKERS):
        return "disk"
    return "exited" if sig is None else "signalled"


def _message(
    ending: Ending,
    exit_code: int | None,
    sig: int | None,
    limits: Limits,
    cpu: float,
    disk: int,
) -> str:
    if ending == "exited":
        return f"exited with status {exit_code}"
    if ending == "signalled":
        return f"was killed by signal {_signal_name(sig)}"
    if ending == "wall-time":
        return f"the job exceeded its wall-time limit of {limits.wall_seconds:g} s and was stopped"
    if ending == "cpu-time":
        # No "used N s": the kernel's tick-based count that fires RLIMIT_CPU can be ahead of
        # rusage's (seen: 0.87 s reported for a 1 s limit).
        return f"the job exceeded its CPU-time limit of {limits.cpu_seconds} s and was stopped"
    if ending == "memory":
        return (
            f"the job ran out of memory: its limit is {_size(limits.memory_bytes)} of address space"
        )
    if ending == "disk":
        wrote = f"wrote {_size(disk)}" if disk > limits.disk_bytes else "a file reached it"
        return (
            f"the job exceeded its disk limit of {_size(limits.disk_bytes)} ({wrote})"
            " and was stopped"
        )
    if ending == "processes":
        return f"the job exceeded its limit of {limits.processes} processes at once and was stopped"
    return "the job was stopped before it ended (the service is shutting down)"


def _signal_name(sig: int | None) -> str:
    if sig is None:
        return "?"
    try:
        return f"{signal.Signals(sig).name} ({sig})"
    except ValueError:
        return str(sig)


def _size(size: int) -> str:
    """Decimal units, as people read them in a log: 100 MB, 1.1 GB."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"
