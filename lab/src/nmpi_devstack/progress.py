"""One line per step, with the time since the command started."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.begin = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.begin

    def line(self, text: str) -> None:
        # `nmpi-devstack down | head`: the work matters more than the report
        with contextlib.suppress(BrokenPipeError):
            print(f"[{self.elapsed():6.1f}s] {text}", file=self.out, flush=True)

    def warn(self, text: str) -> None:
        self.line(f"WARNING: {text}")

    @contextmanager
    def step(self, title: str) -> Iterator[list[str]]:
        """Print `title: <details> (N.N s)` when the block ends; the block may append details."""
        details: list[str] = []
        start = time.monotonic()
        yield details
        took = time.monotonic() - start
        suffix = f": {', '.join(details)}" if details else ""
        self.line(f"{title}{suffix} ({took:.1f} s)")
