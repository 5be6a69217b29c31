"""monitoring/logs/nmpi_logs.py: the central logs' query (service, level, request id, time)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from monitoring.logs import nmpi_logs
from scripts import nmpi_logs_cli

T0 = 1_765_035_600_000_000  # 2025-12-06T15:40:00Z in microseconds


def entry(message: str | list[int], **fields: Any) -> dict[str, Any]:
    return {"MESSAGE": message, "__REALTIME_TIMESTAMP": str(T0), "PRIORITY": "6", **fields}


API_ERROR = entry(
    json.dumps({"time": "t", "level": "ERROR", "message": "boom", "request_id": "r-1"}),
    _HOSTNAME="castor-web-1",
    CONTAINER_NAME="nmpi-job-queue-2",
)
NGINX_500 = entry(
    json.dumps({"request_id": "r-1", "status": 502, "uri": "/jobs/"}),
    _HOSTNAME="castor-web-1",
    CONTAINER_NAME="nmpi-nginx",
)
PATRONI_INFO = entry(
    "2025-12-06 15:40:00,000 INFO: no action. I am (castor-db-1), the leader with the lock",
    _HOSTNAME="castor-db-1",
    CONTAINER_NAME="nmpi-patroni",
    PRIORITY="3",  # Patroni writes to stderr: the driver's priority would say error
)
FAILOVER_WARN = entry(
    json.dumps({"level": "WARNING", "message": "probe failed"}),
    _HOSTNAME="witness-1",
    _SYSTEMD_UNIT="nmpi-failover.service",
)
SSHD = entry("Accepted publickey for debian", _HOSTNAME="witness-1", SYSLOG_IDENTIFIER="sshd")
ALL = [API_ERROR, NGINX_500, PATRONI_INFO, FAILOVER_WARN, SSHD]


def test_services_levels_and_request_ids_are_read_from_each_kind_of_line() -> None:
    lines = list(nmpi_logs.select(ALL))
    assert [(x["service"], x["level"], x["request_id"]) for x in lines] == [
        ("job-queue", "error", "r-1"),
        ("nginx", "error", "r-1"),
        ("patroni", "info", ""),
        ("failover", "warning", ""),
        ("sshd", "info", ""),
    ]
    assert lines[0]["time"] == "2025-12-06T15:40:00.000Z"
    assert lines[0]["host"] == "castor-web-1"


def test_filters_combine_and_the_limit_holds() -> None:
    errors = list(nmpi_logs.select(ALL, level="warning"))
    assert [x["service"] for x in errors] == ["job-queue", "nginx", "failover"]
    one = list(nmpi_logs.select(ALL, services=["job-queue"], level="error"))
    assert [x["message"] for x in one] == [API_ERROR["MESSAGE"]]
    request = list(nmpi_logs.select(ALL, request_id="r-1"))
    assert [x["service"] for x in request] == ["job-queue", "nginx"]
    assert [x["service"] for x in nmpi_logs.select(ALL, grep="PUBLICKEY")] == ["sshd"]
    assert len(list(nmpi_logs.select(ALL, limit=2))) == 2
    line = nmpi_logs.format_line(next(iter(nmpi_logs.select(ALL))))
    assert "castor-web-1" in line
    assert line.endswith("ERROR    [r-1] boom")


def test_binary_messages_do_not_break_the_query() -> None:
    (line,) = nmpi_logs.select([entry(list(b"caf\xc3\xa9 \xff"), SYSLOG_IDENTIFIER="x")])
    assert line["message"].startswith("café")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10m", "-10min"),
        ("30s", "-30s"),
        ("2h", "-2h"),
        ("1d", "-1d"),
        ("2026-12-06 15:40", "2026-12-06 15:40"),
        ("2026-12-06T15:40:00", "2026-12-06 15:40:00"),
    ],
)
def test_times_become_journalctl_times(value: str, expected: str) -> None:
    assert nmpi_logs.journal_time(value, "--since") == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "yesterday; rm -rf /"], "--since 'yesterday; rm -rf /'"),
        (["--host", "castor web"], "--host 'castor web'"),
        (["--service", "$(id)"], "--service '$(id)'"),
        (["--limit", "0"], "--limit 0"),
        (["--limit", "1000000"], "--limit 1000000"),
        (["--grep", "(unclosed"], "not a regular expression"),
        (["--request-id", "a b"], "--request-id 'a b'"),
    ],
)
def test_bad_input_is_refused_naming_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(nmpi_logs.QueryError, match=re.escape(message)):
        nmpi_logs.journalctl_argv(nmpi_logs.parse_args(argv))


def test_the_command_refuses_bad_input_before_reaching_any_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert nmpi_logs_cli.main(["--since", "last tuesday"]) == 2
    assert "--since 'last tuesday'" in capsys.readouterr().err


def test_journalctl_gets_the_time_and_hosts_only() -> None:
    argv = nmpi_logs.journalctl_argv(
        nmpi_logs.parse_args(["--since", "5m", "--until", "1m", "--host", "a", "--host", "b"])
    )
    assert argv[:4] == [
        "journalctl",
        "--directory=/var/log/journal/remote",
        "--no-pager",
        "--output=json",
    ]
    assert "--since=-5min" in argv
    assert "--until=-1min" in argv
    assert argv[-2:] == ["_HOSTNAME=a", "_HOSTNAME=b"]
