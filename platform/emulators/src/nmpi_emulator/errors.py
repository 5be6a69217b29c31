"""Errors the runner reports in the job's log (the job ends in `error`, the emulator goes on)."""

from __future__ import annotations


class JobInputError(Exception):
    """The job cannot run as given (code, command, hardware_config): the message says why."""
