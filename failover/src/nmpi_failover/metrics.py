"""Prometheus metrics of the failover daemon, on a registry of their own.

A dedicated CollectorRegistry keeps tests and several daemons in one process independent,
and keeps the exposition to these series (no default process/platform collectors mixed in
unless the daemon adds them). Every label value is pre-created, so a series exists at 0
before the first event and alert rules can rely on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .decide import AlarmCondition, SwitchReason
from .model import SiteProbe

ACTUATORS = ("dns", "patroni", "neutron", "etcd")
# Probe timeouts are ~1-2 s; buckets resolve the healthy range and the approach to timeout.
PROBE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    def __init__(self, sites: Sequence[str], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.sites = tuple(sites)
        r = self.registry
        self.site_up = Gauge(
            "nmpi_failover_site_up",
            "1 when the site's last probe through its floating IP succeeded",
            ["site"],
            registry=r,
        )
        self.probe_duration = Histogram(
            "nmpi_failover_probe_duration_seconds",
            "Duration of the HTTPS /readyz probe of each site, failed ones included",
            ["site"],
            buckets=PROBE_BUCKETS,
            registry=r,
        )
        self.active_site = Gauge(
            "nmpi_failover_active_site",
            "1 for the site the public DNS name points at, 0 for the other",
            ["site"],
            registry=r,
        )
        self.acting_leader = Gauge(
            "nmpi_failover_acting_leader",
            "1 while this instance holds the etcd lease and may act",
            registry=r,
        )
        self.switches = Counter(
            "nmpi_failover_switches",
            "Switchovers requested from Patroni, by reason",
            ["reason"],
            registry=r,
        )
        self.last_switch = Gauge(
            "nmpi_failover_last_switch_timestamp_seconds",
            "Unix time of the last switchover request",
            registry=r,
        )
        self.actuator_errors = Counter(
            "nmpi_failover_actuator_errors",
            "Failed actions or reads, by actuator",
            ["actuator"],
            registry=r,
        )
        self.alarm = Gauge(
            "nmpi_failover_alarm",
            "1 while the controller holds an alarm condition that needs a human",
            ["condition"],
            registry=r,
        )
        for site in self.sites:
            self.site_up.labels(site=site).set(0)
            self.probe_duration.labels(site=site)
            self.active_site.labels(site=site).set(0)
        for reason in get_args(SwitchReason):
            self.switches.labels(reason=reason)
        for actuator in ACTUATORS:
            self.actuator_errors.labels(actuator=actuator)
        for condition in get_args(AlarmCondition):
            self.alarm.labels(condition=condition).set(0)
        self.acting_leader.set(0)

    def record_probe(self, site: str, probe: SiteProbe) -> None:
        self.site_up.labels(site=site).set(1 if probe.ok else 0)
        if probe.latency is not None:
            self.probe_duration.labels(site=site).observe(probe.latency)

    def set_active_site(self, site: str | None) -> None:
        """The site the name points at; None when it points at neither."""
        for name in self.sites:
            self.active_site.labels(site=name).set(1 if name == site else 0)

    def set_acting_leader(self, acting: bool) -> None:
        self.acting_leader.set(1 if acting else 0)

    def record_switch(self, reason: SwitchReason, at: float) -> None:
        self.switches.labels(reason=reason).inc()
        self.last_switch.set(at)

    def record_actuator_error(self, actuator: str) -> None:
        self.actuator_errors.labels(actuator=actuator).inc()

    def set_alarm(self, condition: AlarmCondition | None) -> None:
        """Raise `condition` and clear every other: one round holds at most one alarm."""
        for name in get_args(AlarmCondition):
            self.alarm.labels(condition=name).set(1 if name == condition else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
