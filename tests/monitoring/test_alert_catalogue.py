"""What every alert must carry, and what must come with it: a runbook section, a promtool test
where it fires and one where it must not, a `for:` that says why, a representative example
for the route tests, and inhibitions that name existing alerts and do what they say.

Plain YAML and Markdown reading: no promtool or amtool (those are test_rules.py and
test_routes.py), so these run in the fast suite too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.examples import EXAMPLES
from tests.monitoring.support import (
    RECEIVERS,
    ROUTES,
    RULES,
    RUNBOOK,
    alert_labels,
    alerting_rules,
    load_yaml,
    rule_files,
    rule_test_files,
)

ALERTS = alerting_rules()
SEVERITIES = {"page", "ticket"}
# Alerts that fire all the time on purpose: no test can show them quiet.
ALWAYS_FIRING = {"Watchdog"}


def runbook_sections() -> list[str]:
    return re.findall(r"^## (\S+)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)


@dataclass(frozen=True)
class AlertCheck:
    test_file: str
    test_name: str
    alertname: str
    eval_time: str
    fires: bool


@functools.cache
def alert_checks() -> tuple[AlertCheck, ...]:
    """Every alert_rule_test of the promtool test files."""
    return tuple(
        AlertCheck(
            path.name,
            str(group.get("name", "")),
            str(check["alertname"]),
            str(check["eval_time"]),
            bool(check.get("exp_alerts")),
        )
        for path in rule_test_files()
        for group in load_yaml(path).get("tests") or []
        for check in group.get("alert_rule_test") or []
    )


def test_there_are_rules_and_tests() -> None:
    assert rule_files(), f"no rule files in {RULES}"
    assert rule_test_files(), "no promtool test files"
    assert ALERTS


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_alert_says_how_bad_what_where_and_what_to_do(alertname: str) -> None:
    rule = ALERTS[alertname]
    labels = rule.get("labels") or {}
    annotations = rule.get("annotations") or {}
    expected = {"none"} if alertname in ALWAYS_FIRING else SEVERITIES
    assert labels.get("severity") in expected, f"{alertname}: severity must be one of {expected}"
    for key in ("summary", "description"):
        assert str(annotations.get(key, "")).strip(), f"{alertname}: no {key} annotation"
    assert annotations.get("runbook_url") == f"docs/runbooks/alerts.md#{alertname.lower()}"
    assert alertname in runbook_sections(), f"{RUNBOOK.name} has no section '## {alertname}'"


def test_runbook_sections_are_alerts() -> None:
    sections = runbook_sections()
    assert sorted(set(sections)) == sorted(sections), "a section appears twice"
    assert set(sections) == set(ALERTS), "sections without an alert, or alerts without one"


@pytest.mark.parametrize("path", rule_files(), ids=lambda path: path.name)
def test_every_for_says_why(path: Path) -> None:
    """A `for:` is chosen against the failover timings: a comment right above it says how."""
    for group in load_yaml(path)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert "for" in rule, f"{rule['alert']}: no `for:` (0s if it must fire at once)"
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^\s+for:", line):
            assert lines[number - 1].strip().startswith("#"), (
                f"{path.name}:{number + 1}: no comment above `{line.strip()}`"
            )


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_alert_has_a_test_where_it_fires_and_one_where_it_must_not(alertname: str) -> None:
    checks = [check for check in alert_checks() if check.alertname == alertname]
    assert any(check.fires for check in checks), f"no promtool test expects {alertname} to fire"
    if alertname not in ALWAYS_FIRING:
        assert any(not check.fires for check in checks), (
            f"no promtool test shows {alertname} quiet (a near miss: a blip shorter than its "
            "`for:`, a value just under its threshold)"
        )


def test_promtool_tests_name_existing_alerts() -> None:
    unknown = {check.alertname for check in alert_checks()} - set(ALERTS)
    assert not unknown, f"promtool tests of alerts that no rule defines: {sorted(unknown)}"


def test_every_rule_file_is_tested() -> None:
    tested: set[str] = set()
    for path in rule_test_files():
        for name in load_yaml(path).get("rule_files") or []:
            target = (path.parent / name).resolve()
            assert target.is_file(), f"{path.name}: no rule file {name}"
            tested.add(target.name)
    untested = {path.name for path in rule_files()} - tested
    assert not untested, f"rule files no promtool test loads: {sorted(untested)}"


def test_every_alert_has_a_routing_example() -> None:
    assert set(EXAMPLES) == set(ALERTS), "tests/monitoring/examples.py is out of date"


# --- Alertmanager's routes.yml --------------------------------------------------------------


def test_routes_file_holds_only_the_tree_and_inhibitions() -> None:
    """Receivers come from the deployment's variables, never from this file."""
    assert set(load_yaml(ROUTES)) == {"route", "inhibit_rules"}


def receivers_of(route: dict[str, Any]) -> Iterator[str]:
    if "receiver" in route:
        yield str(route["receiver"])
    for child in route.get("routes") or []:
        yield from receivers_of(child)


def test_routes_name_only_the_known_receivers() -> None:
    assert set(receivers_of(load_yaml(ROUTES)["route"])) == set(RECEIVERS)


MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        found = MATCHER.match(text)
        assert found, f"matcher not understood by this test: {text!r}"
        name, op, value = found.groups()
        return cls(name, op, value.replace('\\"', '"').replace("\\\\", "\\"))

    def matches(self, labels: dict[str, str]) -> bool:
        """Alertmanager's semantics: a missing label is the empty string, regexes anchored."""
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        found = re.fullmatch(self.value, have) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Inhibition:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def inhibits(self, source: dict[str, str], target: dict[str, str]) -> bool:
        return (
            source != target
            and all(m.matches(source) for m in self.source)
            and all(m.matches(target) for m in self.target)
            and all(source.get(name, "") == target.get(name, "") for name in self.equal)
        )


def inhibitions() -> list[Inhibition]:
    rules = []
    for rule in load_yaml(ROUTES)["inhibit_rules"]:
        assert set(rule) <= {"source_matchers", "target_matchers", "equal"}, rule
        rules.append(
            Inhibition(
                tuple(Matcher.parse(m) for m in rule["source_matchers"]),
                tuple(Matcher.parse(m) for m in rule["target_matchers"]),
                tuple(rule.get("equal") or ()),
            )
        )
    return rules


def test_inhibitions_name_existing_alerts() -> None:
    """A misspelt alert name in an inhibition silently inhibits nothing."""
    for rule in inhibitions():
        for matcher in (*rule.source, *rule.target):
            if matcher.name != "alertname":
                continue
            assert matcher.op in ("=", "=~"), matcher
            known = [name for name in ALERTS if matcher.matches({"alertname": name})]
            assert known, f"{matcher} matches no alert"
            if matcher.op == "=~" and re.fullmatch(r"[A-Za-z0-9|]+", matcher.value):
                unknown = set(matcher.value.split("|")) - set(ALERTS)
                assert not unknown, f"{matcher}: no such alerts {sorted(unknown)}"


def example(alertname: str, **overrides: str) -> dict[str, str]:
    return alert_labels(ALERTS[alertname], {**EXAMPLES[alertname].labels, **overrides})


def at(host: str, location: str) -> dict[str, str]:
    return {"host": host, "location": location, "instance": f"{host}:9100"}


# (source alert, target alert, inhibited?)
INHIBITION_CASES: list[tuple[str, dict[str, str], dict[str, str], bool]] = [
    (
        "a site down holds back its hosts",
        example("SiteDown", site="castor", location="castor"),
        example("HostDown", **at("castor-web-1", "castor")),
        True,
    ),
    (
        "... not the other site's",
        example("SiteDown", site="castor", location="castor"),
        example("HostDown", **at("jusuf-web-1", "jusuf")),
        False,
    ),
    (
        "a site down holds back its etcd member",
        example("SiteDown", site="castor", location="castor"),
        example("EtcdMemberDown", **at("castor-db-1", "castor")),
        True,
    ),
    (
        "a site down holds back the witness's blindness to it",
        example("SiteDown", site="jusuf", location="jusuf"),
        example("MonitoringCannotSeeLocation", location="jusuf"),
        True,
    ),
    (
        "a site down holds back the name's absence from it",
        example("SiteDown", site="castor", location="castor"),
        example("PublicNameNotAtLeader", site="castor", location="castor"),
        True,
    ),
    (
        "a site down does not hide a full disk there (a possible cause)",
        example("SiteDown", site="castor", location="castor"),
        example("DiskSpaceLow", **at("castor-db-1", "castor")),
        False,
    ),
    (
        "a site down does not hide an expiring certificate there (a possible cause)",
        example("SiteDown", site="jusuf", location="jusuf"),
        example("CertificateExpiringCritical", **at("jusuf-web-1", "jusuf")),
        False,
    ),
    (
        "either site down explains the missing synchronous standby",
        example("SiteDown", site="jusuf", location="jusuf"),
        example("DatabaseNoSyncStandby", **at("castor-db-1", "castor")),
        True,
    ),
    (
        "a site down explains nmpi-failover's alarm about an unhealthy standby site",
        example("SiteDown", site="jusuf", location="jusuf"),
        example("FailoverDaemonAlarm", condition="standby_site_unhealthy"),
        True,
    ),
    (
        "... not its DNS alarm",
        example("SiteDown", site="jusuf", location="jusuf"),
        example("FailoverDaemonAlarm", condition="dns_unreadable"),
        False,
    ),
    (
        "a site down does not hide what users see",
        example("SiteDown", site="castor", location="castor"),
        example("PublicEndpointDown"),
        False,
    ),
    (
        "a site down does not hide the other site's",
        example("SiteDown", site="castor", location="castor"),
        example("SiteDown", site="jusuf", location="jusuf"),
        False,
    ),
    (
        "a host down holds back its targets",
        example("HostDown", **at("castor-db-1", "castor")),
        example("TargetDown", **at("castor-db-1", "castor"), job="patroni"),
        True,
    ),
    (
        "a host down holds back its database member's alerts",
        example("HostDown", **at("jusuf-db-1", "jusuf")),
        example("DatabaseReplicaLagging"),
        True,
    ),
    (
        "a host down holds back its database exporter's",
        example("HostDown", **at("jusuf-db-1", "jusuf")),
        example("DatabaseExporterCannotConnect"),
        True,
    ),
    (
        "... not another host's",
        example("HostDown", **at("castor-db-1", "castor")),
        example("DatabaseExporterCannotConnect"),
        False,
    ),
    (
        "a site down holds back its database exporter's",
        example("SiteDown", site="jusuf", location="jusuf"),
        example("DatabaseExporterCannotConnect"),
        True,
    ),
    (
        "a host down does not hold back another host's targets",
        example("HostDown", **at("castor-db-1", "castor")),
        example("TargetDown", **at("castor-web-1", "castor"), job="job-queue"),
        False,
    ),
    (
        "a blind location holds back its hosts",
        example("MonitoringCannotSeeLocation", location="jusuf"),
        example("HostDown", **at("jusuf-db-1", "jusuf")),
        True,
    ),
    (
        "... not another location's",
        example("MonitoringCannotSeeLocation", location="jusuf"),
        example("HostDown", **at("castor-db-1", "castor")),
        False,
    ),
    (
        "etcd without a leader holds back its members' alerts",
        example("EtcdNoLeader"),
        example("EtcdMemberDown"),
        True,
    ),
    (
        "etcd without a leader explains the database without a primary",
        example("EtcdNoLeader"),
        example("DatabaseNoPrimary"),
        True,
    ),
    (
        "etcd without a leader explains the failover daemon without its lease",
        example("EtcdNoLeader"),
        example("FailoverDaemonNotActing"),
        True,
    ),
    (
        "etcd without a leader does not hide the sites going down",
        example("EtcdNoLeader"),
        example("SiteDown"),
        False,
    ),
    (
        "a fast burn holds back the slow burn of the same SLO",
        example("JobQueueErrorBudgetBurnFast"),
        example("JobQueueErrorBudgetBurnSlow"),
        True,
    ),
    (
        "... not of the other SLO",
        example("JobQueueErrorBudgetBurnFast"),
        example("JobQueueLatencyBudgetBurnSlow"),
        False,
    ),
    *(
        (f"{name} does not hold back the Watchdog", example(name), example("Watchdog"), False)
        for name in sorted(EXAMPLES)
    ),
]


@pytest.mark.parametrize(
    ("source", "target", "inhibited"),
    [case[1:] for case in INHIBITION_CASES],
    ids=[case[0] for case in INHIBITION_CASES],
)
def test_inhibition(source: dict[str, str], target: dict[str, str], inhibited: bool) -> None:
    assert any(rule.inhibits(source, target) for rule in inhibitions()) is inhibited
