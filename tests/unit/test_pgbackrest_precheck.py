"""Precheck of the pgbackrest role: each mistake fails naming its variable, before any change.

Run on localhost with --tags precheck; the checks of the inventory's groups (one repository
host, the database members, their addresses, the passphrase at the repository) come last, so
the value checks before them are reached without an inventory.
"""

from __future__ import annotations

import pytest

from tests.support import PrecheckCase, PrecheckRunner, precheck_case


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            precheck_case("pgbackrest", {"pgbackrest_port": 70000}),
            ["pgbackrest_port", "70000"],
            id="port",
        ),
        pytest.param(
            precheck_case("pgbackrest", {"pgbackrest_archive_push_queue_max": "4G"}),
            ["pgbackrest_archive_push_queue_max", "4G"],
            id="queue-size-unit",
        ),
        pytest.param(
            precheck_case("pgbackrest", {"pgbackrest_repo_dir": "relative/repo"}),
            ["pgbackrest_repo_dir", "relative/repo"],
            id="repo-dir-relative",
        ),
        pytest.param(
            precheck_case("pgbackrest", {"pgbackrest_full_calendar": "Sun; rm -rf /"}),
            ["pgbackrest_full_calendar", "Sun; rm -rf /"],
            id="calendar-injection",
        ),
        pytest.param(
            precheck_case("pgbackrest", {}),
            ["pgbackrest_repo_group", "exactly one host", "pgbackrest_repo"],
            id="no-repository-host",
        ),
    ],
)
def test_pgbackrest_mistakes_fail_naming_the_variable(
    precheck: PrecheckRunner, case: PrecheckCase, expected: list[str]
) -> None:
    rc, out = precheck(case)
    assert rc != 0
    for text in expected:
        assert text in out, (text, out[-3000:])
