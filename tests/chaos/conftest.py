"""The chaos suite's fixtures: the deployed lab, the scenarios' rows and their table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nmpi_lab import deployment
from nmpi_lab.chaos import observe
from nmpi_lab.chaos.scenarios import Chaos, Row, table

from tests.support import REPO

REPORT = REPO / ".cache" / "logs" / "chaos-report.txt"
ROWS: list[tuple[Row, list[str]]] = []


@pytest.fixture(scope="session")
def chaos(openstack_lab: Path) -> Iterator[Chaos]:
    """The platform as site.yml deployed it on the lab (make test deploys it in tests/lab,
    which runs first; `make chaos` uses what `make lab` deployed)."""
    if not observe.is_root():
        pytest.fail("the chaos suite cuts networks and freezes VMs: it must run as root")
    try:
        lab = deployment.load()
    except LookupError as exc:
        pytest.fail(f"no deployed lab ({exc}): run `make lab` first")
    chaos = Chaos(lab)
    try:
        yield chaos
    finally:
        chaos.close()


@pytest.fixture(scope="session")
def rows() -> list[tuple[Row, list[str]]]:
    return ROWS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    text = table(ROWS)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text + "\n")
    terminalreporter.section("chaos: what users saw, per scenario")
    terminalreporter.write_line(text)
    terminalreporter.write_line(f"(also in {REPORT})")
