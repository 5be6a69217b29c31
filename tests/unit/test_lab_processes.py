"""nmpi_lab.processes: the one way the lab and the test suites start, await and stop servers."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
from nmpi_lab import processes


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_free_port_can_be_bound() -> None:
    port = processes.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_start_appends_output_to_the_log_after_the_header_with_stdin_closed(
    tmp_path: Path,
) -> None:
    log = tmp_path / "logs" / "server.log"
    log.parent.mkdir()
    log.write_text("before\n")
    process = processes.start(
        python("import sys; print('out'); print(repr(sys.stdin.read()), file=sys.stderr)"),
        log,
        header="== starting\n",
    )
    assert process.wait(timeout=30) == 0
    assert log.read_text() == "before\n== starting\nout\n''\n"


def test_start_passes_the_environment_and_a_new_session(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = processes.start(
        python("import os; print(os.environ['NMPI_X'], os.getsid(0) == os.getpid())"),
        log,
        env={"NMPI_X": "set", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        new_session=True,
    )
    assert process.wait(timeout=30) == 0
    assert log.read_text() == "set True\n"


def test_wait_until_returns_once_the_check_passes() -> None:
    started = time.monotonic()
    processes.wait_until(lambda: time.monotonic() - started > 0.2, 10, "the check")
    assert time.monotonic() - started < 5


def test_wait_until_fails_at_the_deadline_naming_what_and_the_log(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match=r"the server not ready within 0.3 s; see .*x\.log"):
        processes.wait_until(lambda: False, 0.3, "the server", log=tmp_path / "x.log")


def test_wait_until_fails_at_once_when_the_process_exits(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = processes.start(python("raise SystemExit(3)"), log)
    started = time.monotonic()
    with pytest.raises(processes.ServerExitedError, match="the server exited with 3"):
        processes.wait_until(lambda: False, 60, "the server", process=process, log=log)
    assert time.monotonic() - started < 30


def test_stop_kills_a_process_that_ignores_the_signal(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = processes.start(
        python(
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)"
        ),
        log,
    )
    processes.wait_until(lambda: "ready" in log.read_text(), 30, "the child", process=process)
    processes.stop(process, timeout=0.5)
    assert process.returncode == -9


def test_stop_leaves_a_process_that_exited_alone(tmp_path: Path) -> None:
    process = processes.start(python("pass"), tmp_path / "server.log")
    process.wait(timeout=30)
    processes.stop(process)
    assert process.returncode == 0


def test_http_ok_is_false_when_nothing_listens() -> None:
    assert not processes.http_ok(f"http://127.0.0.1:{processes.free_port()}/healthz")


def test_tail_gives_the_last_lines_or_says_there_is_no_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert processes.tail(log, 2) == "line 98\nline 99"
    assert processes.tail(tmp_path / "missing.log") == f"(no log at {tmp_path / 'missing.log'})"
