"""JSON log lines on stderr (journald and the central log pipeline parse them as they are).

Each record carries `level`, `logger`, `message`, a UTC `timestamp`, and the event's own
fields passed as `extra` (decision kind, site, reason, ...), never interpolated into the
message, so they stay queryable.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

LOGGER_NAME = "nmpi_failover"


def configure_logging(level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )
    )
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
