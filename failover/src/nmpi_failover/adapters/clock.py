"""The real clock: the monotonic clock for ages and lease expiry, Unix time for records."""

from __future__ import annotations

import time


class SystemClock:
    """`ports.Clock` backed by the operating system."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()
