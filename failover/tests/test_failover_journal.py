"""The append-only event journal."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from nmpi_failover.journal import Journal, read_tail


def test_events_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.jsonl"  # the directory is created
    with Journal(path, clock=lambda: 1_700_000_000.0) as journal:
        journal.append("started", {"instance": "witness-1"})
        journal.append("decision", {"kind": "point_dns", "site": "jusuf"})
    with Journal(path) as journal:
        journal.append("started", {"instance": "witness-1"})
        events = journal.tail(10)
    assert [e["event"] for e in events] == ["started", "decision", "started"]
    assert events[1]["site"] == "jusuf"
    assert events[0]["time"] == "2023-11-14T22:13:20.000+00:00"
    assert len(path.read_text().splitlines()) == 3  # one JSON object per line


def test_tail_returns_the_last_events_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        for i in range(2000):  # several read blocks
            journal.append("tick", {"i": i, "pad": "x" * 100})
    assert [e["i"] for e in read_tail(path, 3)] == [1997, 1998, 1999]
    assert len(read_tail(path, 5000)) == 2000
    assert read_tail(path, 0) == []


def test_tail_of_a_missing_journal_is_empty(tmp_path: Path) -> None:
    assert read_tail(tmp_path / "nothing.jsonl", 5) == []


def test_line_torn_by_a_crash_is_skipped_and_fenced_off(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.append("before")
    with path.open("a") as handle:
        handle.write('{"event": "torn", "ts"')  # the crash: no closing brace, no newline
    with Journal(path) as journal:
        journal.append("after")
    assert [e["event"] for e in read_tail(path, 10)] == ["before", "after"]
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["event"] == "after"


def test_journal_is_not_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    Journal(path).close()
    assert not stat.S_IMODE(path.stat().st_mode) & stat.S_IROTH
