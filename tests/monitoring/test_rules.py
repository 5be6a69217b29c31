"""The alerting rules pass promtool's checks and their unit tests (monitoring/prometheus/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.monitoring.support import Tool, output, relative, rule_files, rule_test_files

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", rule_files(), ids=lambda path: path.name)
def test_rule_file_is_valid(promtool: Tool, path: Path) -> None:
    result = promtool.run("check", "rules", relative(path))
    assert result.returncode == 0, output(result)


@pytest.mark.parametrize("path", rule_test_files(), ids=lambda path: path.name)
def test_rule_unit_tests_pass(promtool: Tool, path: Path) -> None:
    result = promtool.run("test", "rules", relative(path))
    assert result.returncode == 0, output(result)
    assert "SUCCESS" in result.stdout, output(result)
