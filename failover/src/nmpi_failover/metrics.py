"""Prometheus metrics of the failover daemon, on a registry of their own.

A dedicated CollectorRegistry keeps tests and several daemons in one process independent,
and keeps the exposition to these series (no default process/platform collectors mixed in
unless the daemon adds them). Every label value is pre-created, so a series exists at 0
before the first event and alert rules can rely on it. Member labels come from the config's
db_members only (a member Patroni reports that no site lists gets no series), so they stay
bounded; a value that is unknown (member absent, lag "unknown") is NaN, which no threshold
matches, rather than a made-up 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .decide import AlarmCondition, SwitchReason
from .model import ClusterState, EtcdLeaderView, MemberRole, SiteProbe
from .redundancy import Redundancy, RedundancyKind

NAN = float("nan")
ACTUATORS = ("dns", "patroni", "neutron", "etcd")
# Probe timeouts are ~1-2 s; buckets resolve the healthy range and the approach to timeout.
PROBE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    def __init__(
        self,
        sites: Sequence[str],
        registry: CollectorRegistry | None = None,
        *,
        members: Sequence[str] = (),
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.sites = tuple(sites)
        self.members = tuple(members)  # the configured db_members (redundancy.configured_members)
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
        self.cluster_redundant = Gauge(
            "nmpi_failover_cluster_redundant",
            "1 when the last Patroni /cluster reading showed full redundancy (a streaming "
            "synchronous standby, replicas on the leader's timeline and not lagging, every "
            "configured member present); 0 otherwise, also when Patroni was unreadable",
            registry=r,
        )
        self.sync_standby_present = Gauge(
            "nmpi_failover_sync_standby_present",
            "1 when the last /cluster reading showed a streaming synchronous standby",
            registry=r,
        )
        self.replica_lag = Gauge(
            "nmpi_failover_replica_lag_bytes",
            "Replication lag Patroni reports per configured member (0 for the leader); "
            "NaN when unknown or the member is absent",
            ["member"],
            registry=r,
        )
        self.replica_timeline = Gauge(
            "nmpi_failover_replica_timeline",
            "PostgreSQL timeline per configured member (the leader's too); NaN when unknown",
            ["member"],
            registry=r,
        )
        self.leader_timeline = Gauge(
            "nmpi_failover_leader_timeline",
            "The leader's PostgreSQL timeline; NaN when there is no leader or it is unknown",
            registry=r,
        )
        self.redundancy_alarm = Gauge(
            "nmpi_failover_redundancy_alarm",
            "1 while the cluster has lost redundancy in this way (kept while Patroni is "
            "unreadable: no reading clears it)",
            ["kind"],
            registry=r,
        )
        self.etcd_leader_at_database_site = Gauge(
            "nmpi_failover_etcd_leader_at_database_site",
            "1 when the etcd raft leader is the member at the database leader's site (losing "
            "that site then costs an etcd election, which renews Patroni's leader key and "
            "delays the failover); 0 when it is elsewhere; NaN when either is unknown",
            registry=r,
        )
        self.etcd_leader_at_database_site.set(NAN)
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
        self.cluster_redundant.set(0)
        self.sync_standby_present.set(0)
        self.leader_timeline.set(NAN)
        for member in self.members:
            self.replica_lag.labels(member=member).set(NAN)
            self.replica_timeline.labels(member=member).set(NAN)
        for kind in get_args(RedundancyKind):
            self.redundancy_alarm.labels(kind=kind).set(0)

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

    def set_etcd_leader(self, view: EtcdLeaderView | None, database_site: str | None) -> None:
        """Where the etcd leader is against the database leader's site (None: unknown)."""
        if view is None or database_site is None:
            self.etcd_leader_at_database_site.set(NAN)
        else:
            self.etcd_leader_at_database_site.set(1 if view.site == database_site else 0)

    def record_switch(self, reason: SwitchReason, at: float) -> None:
        self.switches.labels(reason=reason).inc()
        self.last_switch.set(at)

    def record_actuator_error(self, actuator: str) -> None:
        self.actuator_errors.labels(actuator=actuator).inc()

    def set_alarm(self, condition: AlarmCondition | None) -> None:
        """Raise `condition` and clear every other: one round holds at most one alarm."""
        for name in get_args(AlarmCondition):
            self.alarm.labels(condition=name).set(1 if name == condition else 0)

    def record_redundancy(
        self, cluster: ClusterState | None, redundancy: Redundancy | None
    ) -> None:
        """One round's /cluster reading and its assessment (None: Patroni unreadable)."""
        seen = {m.name: m for m in cluster.members} if cluster is not None else {}
        for name in self.members:
            member = seen.get(name)
            lag: float = NAN
            if member is not None and member.role is MemberRole.LEADER:
                lag = 0
            elif member is not None and member.lag_bytes is not None:
                lag = member.lag_bytes
            self.replica_lag.labels(member=name).set(lag)
            timeline = member.timeline if member is not None else None
            self.replica_timeline.labels(member=name).set(_value(timeline))
        redundant = redundancy is not None and redundancy.ok
        self.cluster_redundant.set(1 if redundant else 0)
        synced = redundancy is not None and redundancy.sync_standby is not None
        self.sync_standby_present.set(1 if synced else 0)
        self.leader_timeline.set(_value(redundancy.leader_timeline if redundancy else None))
        if redundancy is None:
            return
        kinds = {alarm.kind for alarm in redundancy.alarms}
        for kind in get_args(RedundancyKind):
            self.redundancy_alarm.labels(kind=kind).set(1 if kind in kinds else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _value(number: int | None) -> float:
    return NAN if number is None else number
