"""The molecule suite's closing table: where each scenario's time went, step by step."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = [
        (report.nodeid.rsplit("[", 1)[-1].rstrip("]"), report.duration, value)
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", "") == "call"
        for name, value in getattr(report, "user_properties", [])
        if name == "molecule_steps"
    ]
    if not rows:
        return
    terminalreporter.section("molecule: where each scenario's time went")
    for scenario, duration, steps in sorted(rows, key=lambda row: -row[1]):
        terminalreporter.write_line(f"{scenario:28} {duration:6.0f}s  {steps}")
