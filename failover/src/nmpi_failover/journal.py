"""Append-only event journal: one JSON object per line, fsynced per event.

It is what `status` shows as recent history, so it must survive restarts and crashes:
each event is a single write(2) on an O_APPEND descriptor followed by fsync, and a line
torn by a crash is skipped when reading and fenced off by a newline before the next append.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

_BLOCK = 64 * 1024


class Journal:
    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        if created:
            _fsync_dir(self.path.parent)  # make the new file's name durable too
        elif not _ends_with_newline(self.path):
            os.write(self._fd, b"\n")  # fence off a line torn by a crash

    def append(self, event: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Write one event durably and return the record as written."""
        now = self._clock()
        record: dict[str, Any] = {
            "ts": now,
            "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "event": event,
        }
        record.update(fields or {})
        line = json.dumps(record, sort_keys=False, default=str, separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode())
        os.fsync(self._fd)
        return record

    def tail(self, count: int) -> list[dict[str, Any]]:
        return read_tail(self.path, count)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_tail(path: Path | str, count: int) -> list[dict[str, Any]]:
    """The last `count` readable events, oldest first; reads backwards, not the whole file."""
    if count <= 0:
        return []
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; reading backwards
    except FileNotFoundError:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        data = b""
        events: list[dict[str, Any]] = []
        position = end
        while position > 0:
            start = max(0, position - _BLOCK)
            handle.seek(start)
            data = handle.read(position - start) + data
            position = start
            lines = data.split(b"\n")
            # The first piece may be a partial line unless we reached the file's start.
            data = lines.pop(0) if position > 0 else b""
            events = _parse(lines) + events
            if len(events) >= count:
                break
        return events[-count:]


def _parse(lines: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for line in lines:
        try:
            value = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue  # blank, or torn by a crash
        if isinstance(value, dict):
            events.append(value)
    return events


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
