"""Alertmanager's route tree (monitoring/alertmanager/routes.yml) with dummy receivers:
amtool accepts it, and sends a representative alert of every rule to its receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.monitoring.examples import EXAMPLES
from tests.monitoring.support import (
    Tool,
    alert_labels,
    alerting_rules,
    alertmanager_config,
    output,
)

pytestmark = pytest.mark.slow

# Alerts that no rule of ours raises, and where they must go all the same.
OTHER_ALERTS: list[tuple[dict[str, str], str]] = [
    ({"alertname": "SomethingNew"}, "ticket"),  # no severity: not lost
    ({"alertname": "SomethingNew", "severity": "critical"}, "ticket"),  # unknown severity
    ({"alertname": "SomethingNew", "severity": "page"}, "page"),
    ({"alertname": "InfoOnly", "severity": "none"}, "blackhole"),
]


@pytest.fixture(scope="module")
def config(scratch: Path) -> Path:
    return alertmanager_config(scratch)


def route(amtool: Tool, config: Path, labels: dict[str, str], receiver: str) -> None:
    # Matchers with quoted values: instance URLs and rule groups carry ':', '/' and ';'.
    matchers = [f"{name}={json.dumps(value)}" for name, value in labels.items()]
    result = amtool.run(
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        f"--verify.receivers={receiver}",
        *matchers,
    )
    assert result.returncode == 0, f"{labels} should go to {receiver}\n{output(result)}"
    assert result.stdout.split() == [receiver], output(result)


def test_config_is_valid(amtool: Tool, config: Path) -> None:
    result = amtool.run("check-config", str(config))
    assert result.returncode == 0, output(result)
    assert "SUCCESS" in result.stdout, output(result)


@pytest.mark.parametrize("alertname", sorted(EXAMPLES))
def test_alert_is_routed(amtool: Tool, config: Path, alertname: str) -> None:
    rule = alerting_rules()[alertname]
    example = EXAMPLES[alertname]
    route(amtool, config, alert_labels(rule, example.labels), example.receiver)


@pytest.mark.parametrize(
    ("labels", "receiver"), OTHER_ALERTS, ids=[str(labels) for labels, _ in OTHER_ALERTS]
)
def test_other_alert_is_routed(
    amtool: Tool, config: Path, labels: dict[str, str], receiver: str
) -> None:
    route(amtool, config, labels, receiver)
