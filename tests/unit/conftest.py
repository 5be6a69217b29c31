"""Fixtures of the unit suite."""

from __future__ import annotations

import pytest

from tests.support import PrecheckRunner


@pytest.fixture(scope="session")
def precheck(tmp_path_factory: pytest.TempPathFactory) -> PrecheckRunner:
    """Results of the role prechecks declared with tests.support.precheck_case.

    Made for the first test that needs it: every case the collected modules declared runs
    then, in one ansible-playbook run (tests/support.py); the tests read their results.
    """
    runner = PrecheckRunner(tmp_path_factory.mktemp("precheck"))
    runner.run_pending()
    return runner
