"""nmpi-emulator's command line: help, refusals, environment, and a real SIGTERM drain."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import certifi
import httpx
import nmpi
import pytest
from emulator_testkit import HERE, PLATFORM, clear_queue, submit
from nmpi_emulator.cli import build_parser, configure, main, parse_duration, parse_size
from nmpi_emulator.workspace import QueueSource
from nmpi_lab.processes import free_port

KEY = "key-" + secrets.token_hex(16)  # made per run: no credential is written in a file


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_text(KEY + "\n")
    path.chmod(0o600)
    return path


def args(key_file: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "spinnaker",
        "--queue-url",
        "https://queue.example.org",
        "--api-key-file",
        str(key_file),
        "--work-root",
        str(tmp_path / "work"),
        "--outputs-base-url",
        "https://emulator.example.org/outputs",
        "--metrics-address",
        "off",
        *extra,
    ]


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for text in (
        "GET /jobs/next/{platform}",
        "example:",
        "--wall-time",
        "NMPI_EMULATOR_WALL_TIME",
        "MemoryError",
        "--i-know-jobs-run-unconfined",
        "brainscales",
    ):
        assert text in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            ["--queue-url", "http://queue.example.org"], "plain http to another host", id="http"
        ),
        pytest.param(["--queue-url", "ftp://x"], "must be an http(s) URL", id="scheme"),
        pytest.param(["--isolation", "none"], "--i-know-jobs-run-unconfined", id="unconfined"),
        pytest.param(["--metrics-address", "nowhere"], "expected host:port", id="metrics"),
        pytest.param(["--ca-file", "/nonexistent/ca.pem"], "is not a file", id="ca"),
    ],
)
def test_refusals(
    key_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    assert main(args(key_file, tmp_path, *extra)) == 2
    assert message in capsys.readouterr().err


def test_key_file_readable_by_others_is_refused(
    key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file.chmod(0o644)
    assert main(args(key_file, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "readable by group or others" in err
    assert f"chmod 600 {key_file}" in err
    key_file.unlink()
    assert main(args(key_file, tmp_path)) == 2
    assert "No such file" in capsys.readouterr().err


def test_options_come_from_the_environment_too(
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NMPI_EMULATOR_SYSTEM", "brainscales")
    monkeypatch.setenv("NMPI_EMULATOR_QUEUE_URL", "http://queue.example.org")
    monkeypatch.setenv("NMPI_EMULATOR_API_KEY_FILE", str(key_file))
    monkeypatch.setenv("NMPI_EMULATOR_WORK_ROOT", str(tmp_path))
    monkeypatch.setenv("NMPI_EMULATOR_OUTPUTS_BASE_URL", "https://o.example.org")
    assert main([]) == 2  # all from the environment, and its queue URL is refused
    assert "plain http to another host" in capsys.readouterr().err
    monkeypatch.setenv("NMPI_EMULATOR_WALL_TIME", "an hour")
    assert main([]) == 2
    assert "not a duration: 'an hour'" in capsys.readouterr().err


def test_sizes_and_durations() -> None:
    assert parse_size("4G") == 4 * 2**30
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("1000") == 1000
    assert parse_duration("15m") == 900
    assert parse_duration("2h") == 7200
    assert parse_duration("90") == 90


def test_sigterm_drains_and_lets_the_running_job_finish(
    server: str,
    new_provider: Callable[[list[str]], str],
    new_user: Callable[..., Any],
    client_factory: Callable[[Any], nmpi.Client],
    tmp_path: Path,
) -> None:
    key = new_provider([PLATFORM])
    clear_queue(server, key, PLATFORM)
    key_file = tmp_path / "key"
    key_file.write_text(key)
    key_file.chmod(0o600)
    account = new_user()
    user = (account, client_factory(account))
    code = "import time\nprint('draining job', flush=True)\ntime.sleep(2)\nprint('done')\n"
    job_id = submit(user, code)
    metrics_port = free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    command = [
        sys.executable,
        "-m",
        "nmpi_emulator.cli",
        "spinnaker",
        "--queue-url",
        server,
        "--api-key-file",
        str(key_file),
        "--work-root",
        str(tmp_path / "work"),
        "--outputs-base-url",
        "https://emulator.example.org/outputs",
        "--workers",
        "1",
        "--metrics-address",
        f"127.0.0.1:{metrics_port}",
        "--memory",
        "8G",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        ends = time.monotonic() + 30
        while user[1].get_job(job_id)["status"] != "running":
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < ends, "the job did not start"
            time.sleep(0.1)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'nmpi_emulator_info{platform="SpiNNaker",version="0.1.0"} 1.0' in metrics
        assert 'nmpi_emulator_workers_busy{platform="SpiNNaker"} 1.0' in metrics
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    messages = [line["message"] for line in lines]
    assert "signal received: draining" in messages
    assert "drained" in messages
    assert {line["level"] for line in lines} <= {"INFO", "WARNING"}
    job = user[1].get_job(job_id, with_log=True)
    assert job["status"] == "finished", job["log"]
    assert "done" in job["log"]


def test_the_queue_options_are_required(
    key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["spinnaker", "--api-key-file", str(key_file)]) == 2
    assert "--queue-url (or NMPI_EMULATOR_QUEUE_URL) is required" in capsys.readouterr().err


def test_selfcheck_runs_pynn_in_the_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selfcheck", "--memory", "8G"]) == 0
    out = capsys.readouterr().out
    assert "selfcheck spikes:" in out
    assert "selfcheck passed" in out
    # Too little memory for NEST: it says so and fails.
    assert main(["selfcheck", "--memory", "100M"]) == 1
    assert "selfcheck FAILED" in capsys.readouterr().err


def test_code_archives_come_from_the_queue_polled_with_its_key_and_ca(
    key_file: Path, tmp_path: Path
) -> None:
    options = ["--queue-url", "https://queue.example.org/nmpi/", "--ca-file", certifi.where()]
    client, config, _ = configure(build_parser().parse_args(args(key_file, tmp_path, *options)))
    client.close()
    assert client.base_url == "https://queue.example.org/nmpi"
    assert config.queue_source == QueueSource(
        "https://queue.example.org/nmpi", KEY, certifi.where()
    )
    assert KEY not in repr(config)
