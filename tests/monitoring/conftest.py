"""Fixtures of the monitoring tests: promtool and amtool (see support.py for where from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.monitoring.support import Tool, tool


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory the tools can read, in the image too (mounted at the same path)."""
    return tmp_path_factory.mktemp("monitoring")


@pytest.fixture(scope="session")
def promtool(scratch: Path) -> Tool:
    return tool("promtool", "NMPI_PROMTOOL", scratch)


@pytest.fixture(scope="session")
def amtool(scratch: Path) -> Tool:
    return tool("amtool", "NMPI_AMTOOL", scratch)
