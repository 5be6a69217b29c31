"""The chaos suite: every scenario of nmpi_lab.chaos.scenarios against the deployed lab.

Each test runs one scenario from the healthy state with users and a hardware site at work,
and fails with the row's problems (acknowledged jobs lost, two writable primaries, a job
handed out twice, the name away from the leader, redundancy not back within 60 s of the heal,
or the scenario's own limits). The table of every row is printed at the end of the session.

    make chaos                        # every scenario (a deployed lab: make lab)
    make chaos SCENARIO=flapping      # one
"""

from __future__ import annotations

import pytest
from nmpi_lab.chaos.scenarios import SCENARIOS, Chaos, Row, run

pytestmark = [pytest.mark.slow, pytest.mark.lab]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str, chaos: Chaos, rows: list[tuple[Row, list[str]]]) -> None:
    spec = SCENARIOS[name]
    row, problems = run(chaos, spec)
    rows.append((row, problems))
    assert not problems, f"{name}: {spec.summary}\n" + "\n".join(problems + row.notes)
