"""Fixtures: the job queue's own (a real PostgreSQL, a live server, users, provider keys, the nmpi
client), loaded from platform/job_queue/tests/conftest.py by emulator_testkit and re-exported here
(pytest finds fixtures as attributes of this module). Helpers the tests import live in
emulator_testkit.py: a module named `conftest` would collide with the job queue's, for mypy too.
"""

from __future__ import annotations

import functools
from pathlib import Path

import emulator_testkit
import pytest
from emulator_testkit import RunScript, job_queue_fixtures

_jq = job_queue_fixtures()
# Everything else of it too: in a pytest run over both test folders, sys.modules["conftest"] is
# whichever conftest.py pytest loaded last, and the job queue's tests `from conftest import`.
globals().update(
    {k: v for k, v in vars(_jq).items() if not k.startswith("_") and k not in globals()}
)
pg = _jq.pg
database_url = _jq.database_url
server = _jq.server
server_log = _jq.server_log
new_user = _jq.new_user
new_provider = _jq.new_provider
api = _jq.api
client_factory = _jq.client_factory


@pytest.fixture
def run_script(tmp_path: Path) -> RunScript:
    """Run `code` as run.py in a fresh folder, as the runner would (emulator_testkit.run_script)."""
    return functools.partial(emulator_testkit.run_script, tmp_path)
