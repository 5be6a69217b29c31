#!/usr/bin/env python3
"""Query the central logs at the log server: every host's journal, received by
systemd-journal-remote (roles/journal_remote), filtered by time, host, service, level, request
id and text, printed one JSON object per line.

It runs ON the log server (playbooks/logs.yml copies it there and runs it with python3: the
standard library only), so that only the matching lines cross the network; scripts/nmpi-logs
is the operator's command around it and prints the lines for people (format_line below).

    python3 nmpi_logs.py --since 10m --service job-queue --level error
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

JOURNAL_DIR = "/var/log/journal/remote"
LEVELS = ("debug", "info", "warning", "error", "critical")
# Words services print for their level (Patroni, PostgreSQL, nginx's error log, zap, logging).
_LEVEL_WORDS = {
    "debug": "debug",
    "trace": "debug",
    "info": "info",
    "notice": "info",
    "log": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "err": "error",
    "crit": "critical",
    "critical": "critical",
    "fatal": "critical",
    "panic": "critical",
    "alert": "critical",
    "emerg": "critical",
}
_TEXT_LEVEL = re.compile(r"\b(" + "|".join(_LEVEL_WORDS) + r")\b[:\]]?", re.IGNORECASE)
# syslog priorities 0-7 (journald's PRIORITY): Docker's journald driver gives stderr 3, stdout 6.
_PRIORITY_LEVEL = {0: "critical", 1: "critical", 2: "critical", 3: "error", 4: "warning"}
_PRIORITY_LEVEL.update({5: "info", 6: "info", 7: "debug"})
# Relative times: 10m, 2h, 1d (journalctl's own "-10min" spelling is made from them).
_RELATIVE = re.compile(r"^(\d{1,6})(s|m|h|d)$")
_ABSOLUTE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
MAX_LIMIT = 100_000
FIELDS = (
    "MESSAGE",
    "PRIORITY",
    "_HOSTNAME",
    "CONTAINER_NAME",
    "SYSLOG_IDENTIFIER",
    "_SYSTEMD_UNIT",
    "__REALTIME_TIMESTAMP",
)


class QueryError(ValueError):
    """Bad input: what is wrong and where."""


def journal_time(value: str, option: str) -> str:
    """journalctl's --since/--until argument for `10m` (ago) or `2026-12-06 15:40[:00]`."""
    relative = _RELATIVE.match(value)
    if relative:
        unit = {"s": "s", "m": "min", "h": "h", "d": "d"}[relative[2]]
        return f"-{relative[1]}{unit}"
    if _ABSOLUTE.match(value):
        return value.replace("T", " ")
    raise QueryError(
        f"{option} {value!r}: give a duration ago (30s, 10m, 2h, 1d) or a UTC time "
        "(2026-12-06 15:40 or 2026-12-06T15:40:00)"
    )


def _text(value: Any) -> str:
    # journald gives binary-unsafe messages as lists of bytes.
    if isinstance(value, list):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def parsed_message(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The message as JSON, when the service logs JSON (the job queue, nginx, etcd, failover)."""
    message = _text(entry.get("MESSAGE")).strip()
    if not message.startswith("{"):
        return None
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def service_of(entry: dict[str, Any]) -> str:
    """The service a line is from: a container's name without the nmpi- prefix and replica
    number (nmpi-job-queue-2: job-queue), a unit's name, else the syslog identifier."""
    container = _text(entry.get("CONTAINER_NAME"))
    if container:
        name = container.removeprefix("nmpi-")
        return re.sub(r"-\d+$", "", name)
    unit = _text(entry.get("_SYSTEMD_UNIT"))
    if unit and unit.endswith(".service") and unit.startswith("nmpi-"):
        return unit.removesuffix(".service").removeprefix("nmpi-")
    return _text(entry.get("SYSLOG_IDENTIFIER")) or unit.removesuffix(".service") or "unknown"


def level_of(entry: dict[str, Any]) -> str:
    """The line's level: the JSON `level`, else a level word near the start of the text, else
    journald's priority."""
    data = parsed_message(entry)
    if data is not None:
        word = str(data.get("level") or data.get("levelname") or "").lower()
        if word in _LEVEL_WORDS:
            return _LEVEL_WORDS[word]
        status = data.get("status")
        if isinstance(status, int):  # an access log line: the HTTP status says it
            return "error" if status >= 500 else "warning" if status >= 400 else "info"
    else:
        found = _TEXT_LEVEL.search(_text(entry.get("MESSAGE"))[:80])
        if found:
            return _LEVEL_WORDS[found[1].lower()]
    try:
        return _PRIORITY_LEVEL[int(_text(entry.get("PRIORITY")) or 6)]
    except (ValueError, KeyError):
        return "info"


def request_id_of(entry: dict[str, Any]) -> str:
    data = parsed_message(entry)
    return str((data or {}).get("request_id") or "")


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """The fields a reader needs, one JSON object per line."""
    micros = int(_text(entry.get("__REALTIME_TIMESTAMP")) or 0)
    when = datetime.fromtimestamp(micros / 1e6, UTC).isoformat(timespec="milliseconds")
    return {
        "time": when.replace("+00:00", "Z"),
        "host": _text(entry.get("_HOSTNAME")),
        "service": service_of(entry),
        "level": level_of(entry),
        "request_id": request_id_of(entry),
        "message": _text(entry.get("MESSAGE")),
    }


def select(
    entries: Iterable[dict[str, Any]],
    *,
    services: Sequence[str] = (),
    level: str = "",
    request_id: str = "",
    grep: str = "",
    limit: int = 1000,
) -> Iterator[dict[str, Any]]:
    """The summaries of the entries that match every filter given, at most `limit`."""
    floor = LEVELS.index(level) if level else 0
    pattern = re.compile(grep, re.IGNORECASE) if grep else None
    count = 0
    for entry in entries:
        line = summary(entry)
        if services and line["service"] not in services:
            continue
        if LEVELS.index(line["level"]) < floor:
            continue
        if request_id and request_id != line["request_id"] and request_id not in line["message"]:
            continue
        if pattern and not pattern.search(line["message"]):
            continue
        yield line
        count += 1
        if count >= limit:
            return


def format_line(line: dict[str, Any]) -> str:
    """One line for people: time, host, service, level, request id, message."""
    rid = f" [{line['request_id']}]" if line.get("request_id") else ""
    data = parsed_message({"MESSAGE": line["message"]})
    # A JSON line's own message, when it has one (access lines have none: shown whole).
    text = str(data["message"]) if data and data.get("message") else line["message"]
    return (
        f"{line['time']} {line['host']:<14} {line['service']:<14} "
        f"{line['level'].upper():<8}{rid} {text}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nmpi_logs.py",
        description="Query the central logs (runs on the log server; scripts/nmpi-logs wraps it).",
    )
    parser.add_argument("--since", default="10m", help="a duration ago (10m) or a UTC time")
    parser.add_argument("--until", default="", help="a duration ago or a UTC time (default: now)")
    parser.add_argument("--host", action="append", default=[], help="inventory host name")
    parser.add_argument("--service", action="append", default=[], help="e.g. job-queue, patroni")
    parser.add_argument("--level", default="", choices=("", *LEVELS), help="this level and above")
    parser.add_argument("--request-id", default="", help="lines of this request id")
    parser.add_argument("--grep", default="", help="a regular expression the message matches")
    parser.add_argument(
        "--limit", type=int, default=1000, help=f"at most this many (<= {MAX_LIMIT})"
    )
    parser.add_argument("--directory", default=JOURNAL_DIR, help="the received journals")
    return parser.parse_args(argv)


def journalctl_argv(args: argparse.Namespace) -> list[str]:
    """The journalctl command for the time and host filters (the others are applied here)."""
    for option, values in (("--host", args.host), ("--service", args.service)):
        for value in values:
            if not _NAME.match(value):
                raise QueryError(f"{option} {value!r}: letters, digits, '.', '_', '@' and '-' only")
    if args.request_id and not _NAME.match(args.request_id):
        raise QueryError(
            f"--request-id {args.request_id!r}: letters, digits, '.', '_', '@' and '-' only"
        )
    if not 1 <= args.limit <= MAX_LIMIT:
        raise QueryError(f"--limit {args.limit}: give 1 to {MAX_LIMIT}")
    if args.grep:
        try:
            re.compile(args.grep)
        except re.error as exc:
            raise QueryError(f"--grep {args.grep!r}: not a regular expression ({exc})") from exc
    argv = ["journalctl", f"--directory={args.directory}", "--no-pager", "--output=json"]
    argv += [
        f"--output-fields={','.join(FIELDS)}",
        f"--since={journal_time(args.since, '--since')}",
    ]
    if args.until:
        argv.append(f"--until={journal_time(args.until, '--until')}")
    # Matches of one field are OR'ed by journalctl.
    argv += [f"_HOSTNAME={host}" for host in args.host]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        command = journalctl_argv(args)
    except QueryError as exc:
        print(f"nmpi_logs: {exc}", file=sys.stderr)
        return 2
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as journal:
        assert journal.stdout is not None
        entries = (json.loads(raw) for raw in journal.stdout if raw.strip())
        for line in select(
            entries,
            services=args.service,
            level=args.level,
            request_id=args.request_id,
            grep=args.grep,
            limit=args.limit,
        ):
            print(json.dumps(line, ensure_ascii=False))
        journal.terminate()
        _, errors = journal.communicate()
    # 0 also when journalctl was stopped early at the limit (SIGTERM).
    if journal.returncode not in (0, -15) and errors.strip():
        print(f"nmpi_logs: journalctl: {errors.strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
