"""What the monitoring stack tells the operators during a chaos scenario.

AlertWatch polls Alertmanager at the witness (as an operator's dashboard would) and records
when each alert was seen active and when it was last seen; a scenario names the alerts its
fault must raise (ExpectedAlert), which must fire within the rule's own `for:` plus one scrape
and one evaluation interval (plus the poll) and resolve after the heal. LogMarkers writes lines
into a VM's journal during a fault (from inside the VM: a cut site is still reached) and
checks afterwards that every one of them reached the central log server: none lost.

The rules' `for:` values are read from monitoring/prometheus/rules, the files Prometheus runs.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from nmpi_devstack import chaos as lab_chaos
from nmpi_devstack.paths import REPO_ROOT as REPO

from nmpi_lab import deployment

RULES = REPO / "monitoring" / "prometheus" / "rules"
# Prometheus' scrape and evaluation intervals (roles/prometheus defaults, as site.yml deploys).
SCRAPE_INTERVAL = 15.0
EVALUATION_INTERVAL = 15.0
POLL = 2.0
# Prometheus sends a resolved alert at the first evaluation after its condition clears, which
# needs a fresh scrape first; Alertmanager then drops it from the active list.
RESOLVE_WITHIN = SCRAPE_INTERVAL + 2 * EVALUATION_INTERVAL + 4 * POLL
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _seconds(duration: str) -> float:
    match = _DURATION.match(duration.strip())
    if not match or not duration.strip():
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    hours, minutes, seconds = (int(x or 0) for x in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def rule_for(alertname: str, rules: Path = RULES) -> float:
    """The `for:` of an alert rule, in seconds (0 when it has none)."""
    for path in sorted(rules.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alertname:
                    return _seconds(str(rule.get("for", "0s")))
    raise LookupError(f"no alert rule {alertname} in {rules}")


@dataclass(frozen=True)
class ExpectedAlert:
    """An alert a fault must raise: its name and the labels it must carry."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    resolves: bool = True  # resolves by itself once the fault is healed
    # What starts the rule's condition: the fault itself, or the leader's move it causes
    # (a failover happens some 20 s after a cut; the alert about it cannot come before).
    after_leader_moved: bool = False
    # Seconds the condition may take to begin after that (e.g. Patroni drops a lost
    # synchronous standby about wal_sender_timeout + loop_wait = 8 s after it stops).
    condition_delay: float = 0.0

    def matches(self, alert: dict[str, Any]) -> bool:
        found = alert.get("labels", {})
        return found.get("alertname") == self.name and all(
            found.get(key) == value for key, value in self.labels
        )

    def deadline(self) -> float:
        """Seconds after the fault (or the leader's move): the condition's own delay, the
        rule's `for:`, a scrape, an evaluation and the polls."""
        return (
            self.condition_delay
            + rule_for(self.name)
            + SCRAPE_INTERVAL
            + EVALUATION_INTERVAL
            + 2 * POLL
        )

    def __str__(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in self.labels)
        return f"{self.name}{{{labels}}}" if labels else self.name


@dataclass
class AlertWatch:
    """Alertmanager's active alerts, polled in the background."""

    lab: deployment.Deployment
    # (alertname, sorted labels) -> [first seen active, last seen active]
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = field(default_factory=dict)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alert-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                alerts = self.lab.alerts()
            except (OSError, ValueError):
                self.errors += 1
                alerts = None
            now = time.time()
            if alerts is not None:
                with self._lock:
                    for alert in alerts:
                        # Firing: notified (active) or held back by an inhibition or a silence
                        # (suppressed); not a resolved one Alertmanager still lists.
                        if alert.get("status", {}).get("state") not in ("active", "suppressed"):
                            continue
                        labels = tuple(sorted(alert.get("labels", {}).items()))
                        name = str(dict(labels).get("alertname", ""))
                        self.seen.setdefault((name, labels), [now, now])[1] = now
            self._stop.wait(POLL)

    def first_active(self, expected: ExpectedAlert, after: float) -> float | None:
        """When an alert matching `expected` was first seen active at or after `after`. For an
        alert about the leader's move, only an alert that began after it counts: one still
        active from an earlier failover (its 15-minute window) says nothing about this one."""
        with self._lock:
            times = [
                max(first, after)
                for (_, labels), (first, last) in self.seen.items()
                if last >= after
                and expected.matches({"labels": dict(labels)})
                and (not expected.after_leader_moved or first >= after - POLL)
            ]
        return min(times) if times else None

    def last_active(self, expected: ExpectedAlert) -> float | None:
        with self._lock:
            times = [
                last
                for (_, labels), (_, last) in self.seen.items()
                if expected.matches({"labels": dict(labels)})
            ]
        return max(times) if times else None

    def wait_fired(
        self, expected: list[ExpectedAlert], starts: dict[str, float]
    ) -> dict[str, tuple[float | None, float]]:
        """Wait until every expected alert was seen active after its start (`starts`, by
        str(alert)), each at most its deadline; return each one's (delay after its start or
        None if it never fired, the deadline)."""
        end = max((starts[str(e)] + e.deadline() for e in expected), default=0.0)
        while time.time() < end and not all(self.first_active(e, starts[str(e)]) for e in expected):
            time.sleep(POLL)
        result: dict[str, tuple[float | None, float]] = {}
        for e in expected:
            start = starts[str(e)]
            first = self.first_active(e, start)
            result[str(e)] = (None if first is None else first - start, e.deadline())
        return result

    def wait_resolved(
        self, expected: list[ExpectedAlert], healed: float
    ) -> dict[str, float | None]:
        """Wait until the alerts that resolve by themselves are no longer active (their last
        sighting before the latest poll); return each one's delay after the heal."""
        waiting = [e for e in expected if e.resolves]
        deadline = healed + RESOLVE_WITHIN
        result: dict[str, float | None] = {}
        while True:
            now = time.time()
            for e in waiting:
                last = self.last_active(e)
                if str(e) not in result and (last is None or last < now - 2 * POLL):
                    result[str(e)] = max(0.0, (last or healed) - healed)
            if len(result) == len(waiting) or now > deadline:
                break
            time.sleep(POLL)
        return {str(e): result.get(str(e)) for e in waiting}


@dataclass
class LogMarkers:
    """Lines written into a VM's journal during a fault, to be found at the log server."""

    server: str  # the VM (instance name) that logs them
    tag: str = field(default_factory=lambda: f"nmpi-chaos-{time.time_ns()}")
    written: int = 0

    def write(self) -> None:
        """One line, from inside the VM (its network may be cut: docker exec still reaches it)."""
        container = lab_chaos.find_instance(self.server)
        code, output = container.exec_run(
            ["logger", "-t", "nmpi-chaos", f"{self.tag} {self.written}"]
        )
        if code != 0:
            raise RuntimeError(f"logger in {self.server} failed: {output!r}")
        self.written += 1

    def received(self, lab: deployment.Deployment) -> int:
        """How many of the lines the log server holds (distinct: a resent line counts once)."""
        command = (
            "sudo journalctl -D /var/log/journal/remote --no-pager -q -o cat "
            f"--grep '^{self.tag} ' | sort -u | wc -l"
        )
        return int(lab.ssh(lab.monitoring, command, timeout=60).strip() or 0)

    def wait_received(self, lab: deployment.Deployment, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        count = self.received(lab)
        while count < self.written and time.monotonic() < deadline:
            time.sleep(5)
            count = self.received(lab)
        return count
