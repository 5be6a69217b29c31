"""The redundancy assessment: pure over /cluster readings, then as status, metrics and the
daemon's log lines and journal events (the daemon on in-process fakes, no network)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from failover_testkit import CASTOR_IP, make_config, observation
from nmpi_failover.adapters.patroni import parse_cluster, reconcile
from nmpi_failover.config import SiteConfig
from nmpi_failover.daemon import Adapters, Daemon
from nmpi_failover.decide import MoveFloatingIp, Switchover
from nmpi_failover.journal import Journal, read_tail
from nmpi_failover.metrics import Metrics
from nmpi_failover.model import (
    ClusterState,
    DnsRecord,
    FloatingIpState,
    LeaseState,
    LeaseStatus,
    Member,
    MemberRole,
    SiteProbe,
)
from nmpi_failover.operations import format_status, status_report
from nmpi_failover.redundancy import (
    LAG_RISES,
    LagTrend,
    Redundancy,
    alarm_changes,
    assess,
    configured_members,
)

CONFIG = make_config()  # castor-db-1 at castor, jusuf-db-1 at jusuf; max_replica_lag_bytes 1000
LEADER = Member("castor-db-1", "castor", MemberRole.LEADER, "running", None, 7)


def replica(
    role: MemberRole = MemberRole.SYNC_STANDBY,
    state: str = "streaming",
    lag: int | None = 0,
    timeline: int | None = 7,
    name: str = "jusuf-db-1",
) -> Member:
    return Member(name, CONFIG.site_of_member(name), role, state, lag, timeline)


def cluster(*replicas: Member, leader: Member = LEADER, scope: str | None = "nmpi") -> ClusterState:
    return ClusterState((leader, *replicas), scope=scope)


HEALTHY = cluster(replica())


def kinds(redundancy: Redundancy | None) -> list[tuple[str, str | None]]:
    assert redundancy is not None
    return [(a.kind, a.member) for a in redundancy.alarms]


# --- the pure assessment -------------------------------------------------------------------


def test_a_healthy_cluster_is_redundant() -> None:
    redundancy = assess(HEALTHY, CONFIG)
    assert redundancy == Redundancy((), sync_standby="jusuf-db-1", leader_timeline=7)
    assert redundancy.ok


@pytest.mark.parametrize(
    "standby",
    [
        replica(role=MemberRole.REPLICA),  # asynchronous, even if streaming and in sync
        replica(state="running"),  # Patroni 3+: running but no WAL receiver connected
        replica(state="stopped", lag=None),
    ],
)
def test_no_streaming_synchronous_standby(standby: Member) -> None:
    redundancy = assess(cluster(standby), CONFIG)
    assert kinds(redundancy) == [("no_sync_standby", None)]
    assert redundancy is not None
    assert redundancy.sync_standby is None
    message = redundancy.alarms[0].message
    assert f"(replicas: jusuf-db-1 {standby.role} {standby.state})" in message
    assert "castor-db-1 acknowledges commits alone" in message
    assert "Patroni makes a streaming replica the synchronous standby by itself" in message


def test_a_quorum_standby_counts_as_synchronous() -> None:
    redundancy = assess(cluster(replica(role=MemberRole.QUORUM_STANDBY)), CONFIG)
    assert redundancy is not None
    assert redundancy.ok


def test_a_leader_without_replica_has_no_sync_standby_and_misses_a_member() -> None:
    redundancy = assess(cluster(), CONFIG)
    assert kinds(redundancy) == [("no_sync_standby", None), ("member_missing", "jusuf-db-1")]
    assert redundancy is not None
    assert "(the leader has no replica)" in redundancy.alarms[0].message
    missing = redundancy.alarms[1]
    assert missing.site == "jusuf"
    assert "jusuf-db-1 (a db member of jusuf) is not in Patroni's /cluster" in missing.message
    assert "start that member's Patroni and check it reaches etcd" in missing.message


def test_a_replica_on_another_timeline_diverged() -> None:
    # The old primary back from a cut-off: not streaming, on the timeline it forked.
    redundancy = assess(cluster(replica(state="running", timeline=6)), CONFIG)
    assert kinds(redundancy) == [
        ("no_sync_standby", None),
        ("replica_timeline_diverged", "jusuf-db-1"),
    ]
    assert redundancy is not None
    alarm = redundancy.alarms[1]
    assert alarm.site == "jusuf"
    assert "jusuf-db-1 is on timeline 6, the leader castor-db-1 on 7, and it is running" in (
        alarm.message
    )
    assert "Patroni (pg_rewind)" in alarm.message
    assert alarm.message.endswith("rebuild it from the leader: `patronictl reinit nmpi jusuf-db-1`")


def test_without_a_scope_the_command_names_the_placeholder() -> None:
    redundancy = assess(cluster(replica(timeline=8), scope=None), CONFIG)
    assert kinds(redundancy) == [("replica_timeline_diverged", "jusuf-db-1")]
    assert redundancy is not None
    assert "`patronictl reinit <scope> jusuf-db-1`" in redundancy.alarms[0].message


def test_unknown_timelines_are_not_judged() -> None:
    assert kinds(assess(cluster(replica(timeline=None)), CONFIG)) == []


def test_a_replica_beyond_max_replica_lag_bytes_lags() -> None:
    assert kinds(assess(cluster(replica(lag=1000)), CONFIG)) == []  # at the limit: fine
    redundancy = assess(cluster(replica(lag=1001)), CONFIG)
    assert kinds(redundancy) == [("replica_lagging", "jusuf-db-1")]
    assert redundancy is not None
    message = redundancy.alarms[0].message
    assert "jusuf-db-1 is 1001 bytes behind the leader, more than max_replica_lag_bytes 1000" in (
        message
    )
    assert "every commit on the leader waits for it" in message  # the synchronous standby
    assert "Patroni does not act on lag" in message
    assert "`patronictl reinit nmpi jusuf-db-1`" in message


def test_an_unknown_lag_is_no_lag_alarm_and_restarts_the_trend() -> None:
    trend = LagTrend()
    for lag in range(100, 100 * (LAG_RISES + 1), 100):  # LAG_RISES - 1 rises
        trend = trend.record(cluster(replica(lag=lag)))
    trend = trend.record(cluster(replica(lag=None)))
    unknown = cluster(replica(lag=None))
    assert kinds(assess(unknown, CONFIG, trend)) == []
    assert trend.runs == {}
    trend = trend.record(cluster(replica(lag=900)))  # one more rise would have made it growing
    assert kinds(assess(cluster(replica(lag=900)), CONFIG, trend)) == []


def test_a_streaming_replica_whose_lag_keeps_rising_lags() -> None:
    """Within max_replica_lag_bytes, but never falling: it does not keep up."""
    readings = [10, 10, 20, 20, 20, 30, 40, 50, 60]  # equal readings: Patroni not refreshed
    trend = LagTrend()
    seen = []
    for lag in readings:
        state = cluster(replica(lag=lag))
        trend = trend.record(state)
        seen.append(kinds(assess(state, CONFIG, trend)))
    assert seen[:-1] == [[]] * (len(readings) - 1)
    assert seen[-1] == [("replica_lagging", "jusuf-db-1")]
    redundancy = assess(cluster(replica(lag=60)), CONFIG, trend)
    assert redundancy is not None
    assert "jusuf-db-1's lag rose in each of its last 5 readings (10 -> 60 bytes)" in (
        redundancy.alarms[0].message
    )
    # One fall and the run starts again.
    trend = trend.record(cluster(replica(lag=0)))
    assert kinds(assess(cluster(replica(lag=0)), CONFIG, trend)) == []


def test_the_trend_keeps_its_runs_through_an_unreadable_round_but_not_through_leadership() -> None:
    trend = LagTrend().record(cluster(replica(lag=10))).record(cluster(replica(lag=20)))
    assert trend.record(None) == trend
    promoted = ClusterState(
        (
            Member("jusuf-db-1", "jusuf", MemberRole.LEADER, "running", None, 8),
            Member("castor-db-1", "castor", MemberRole.SYNC_STANDBY, "streaming", 30, 8),
        )
    )
    assert set(trend.record(promoted).runs) == {"castor-db-1"}


def test_no_leader_means_no_sync_standby_and_nothing_judged_against_a_leader() -> None:
    two_leaders = ClusterState(
        (LEADER, Member("jusuf-db-1", "jusuf", MemberRole.LEADER, "running", None, 8))
    )
    redundancy = assess(two_leaders, CONFIG)
    assert kinds(redundancy) == [("no_sync_standby", None)]
    assert redundancy is not None
    assert redundancy.leader_timeline is None
    assert "no single leader" in redundancy.alarms[0].message


def test_an_unreadable_cluster_is_unknown() -> None:
    assert assess(None, CONFIG) is None


def test_members_no_site_lists_are_judged_but_never_missing() -> None:
    stray = replica(role=MemberRole.REPLICA, lag=5000, name="stray-db")
    redundancy = assess(cluster(replica(), stray), CONFIG)
    assert kinds(redundancy) == [("replica_lagging", "stray-db")]
    assert redundancy is not None
    assert redundancy.alarms[0].site is None
    assert "a failover to it could lose commits" in redundancy.alarms[0].message


def test_alarm_changes_ignore_a_changing_message() -> None:
    lagging = assess(cluster(replica(lag=5000)), CONFIG)
    more = assess(cluster(replica(lag=9000)), CONFIG)
    assert lagging is not None
    assert more is not None
    held = {a.key: a for a in lagging.alarms}
    assert alarm_changes(held, more) == ([], [])
    healthy = assess(HEALTHY, CONFIG)
    assert healthy is not None
    assert alarm_changes(held, healthy) == ([], list(lagging.alarms))
    assert alarm_changes({}, lagging) == (list(lagging.alarms), [])


def test_patroni_scope_is_read_and_kept_by_reconcile() -> None:
    data = {
        "members": [
            {"name": "castor-db-1", "role": "leader", "state": "running", "timeline": 7},
            {"name": "jusuf-db-1", "role": "sync_standby", "state": "streaming", "lag": "unknown"},
        ],
        "scope": "nmpi",
    }
    state = parse_cluster(data, CONFIG)
    assert state is not None
    assert state.scope == "nmpi"
    assert state.members[1].lag_bytes is None  # Patroni's "unknown"
    assert parse_cluster({"members": []}, CONFIG) == ClusterState((), scope=None)
    other = ClusterState((Member("jusuf-db-1", "jusuf", MemberRole.LEADER, "running", None, 7),))
    in_doubt = reconcile([state, other])  # two leaders, same timeline: both shown
    assert in_doubt is not None
    assert in_doubt.scope == "nmpi"


# --- status --------------------------------------------------------------------------------


def report(state: ClusterState | None) -> dict[str, Any]:
    return status_report(
        CONFIG,
        observation(100.0, cluster_state=state, no_cluster=state is None),
        [],
    )


def test_status_json_of_a_redundant_cluster() -> None:
    assert report(HEALTHY)["redundancy"] == {
        "ok": True,
        "sync_standby": "jusuf-db-1",
        "leader_timeline": 7,
        "alarms": [],
    }


def test_status_json_lists_each_alarm() -> None:
    redundancy = report(cluster(replica(state="running", timeline=6, lag=None)))["redundancy"]
    assert redundancy["ok"] is False
    assert redundancy["sync_standby"] is None
    assert [set(a) for a in redundancy["alarms"]] == [{"kind", "member", "site", "message"}] * 2
    assert [(a["kind"], a["member"], a["site"]) for a in redundancy["alarms"]] == [
        ("no_sync_standby", None, None),
        ("replica_timeline_diverged", "jusuf-db-1", "jusuf"),
    ]


def test_status_json_of_an_unreadable_cluster_is_unknown() -> None:
    assert report(None)["redundancy"] == {
        "ok": None,
        "sync_standby": None,
        "leader_timeline": None,
        "alarms": [],
    }


def test_status_text_of_a_redundant_cluster() -> None:
    text = format_status(report(HEALTHY))
    assert "redundancy: ok (synchronous standby jusuf-db-1 streaming; leader on timeline 7)" in (
        text.splitlines()
    )
    assert "ALARM" not in text


def test_status_text_makes_each_alarm_stand_out() -> None:
    text = format_status(report(cluster(replica(state="running", timeline=6, lag=None))))
    lines = text.splitlines()
    assert "redundancy: LOST (2 alarms)" in lines
    alarms = [line for line in lines if line.startswith("ALARM")]
    assert [a.split(":")[0] for a in alarms] == [
        "ALARM no_sync_standby",
        "ALARM replica_timeline_diverged jusuf-db-1",
    ]
    block = [line for line in lines if line.startswith(("ALARM", "      "))]
    assert all(len(line) <= 100 for line in block if "`" not in line)
    # The command is never split across lines, so it can be copied.
    assert any("`patronictl reinit nmpi jusuf-db-1`" in line for line in lines)
    # Continuation lines are indented under their ALARM.
    start = lines.index(alarms[1])
    assert lines[start + 1].startswith("      ")


def test_status_text_of_an_unreadable_cluster() -> None:
    text = format_status(report(None))
    assert "database: Patroni unreadable at every site" in text
    assert "redundancy: unknown (Patroni unreadable)" in text.splitlines()


# --- metrics -------------------------------------------------------------------------------


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_redundancy_series_exist_before_the_first_reading() -> None:
    metrics = Metrics(CONFIG.site_names, members=configured_members(CONFIG))
    assert sample(metrics, "nmpi_failover_cluster_redundant") == 0
    assert sample(metrics, "nmpi_failover_sync_standby_present") == 0
    for kind in ("no_sync_standby", "replica_timeline_diverged", "replica_lagging"):
        assert sample(metrics, "nmpi_failover_redundancy_alarm", kind=kind) == 0
    assert sample(metrics, "nmpi_failover_redundancy_alarm", kind="member_missing") == 0
    lag = sample(metrics, "nmpi_failover_replica_lag_bytes", member="jusuf-db-1")
    assert lag is not None
    assert math.isnan(lag)
    timeline = sample(metrics, "nmpi_failover_leader_timeline")
    assert timeline is not None
    assert math.isnan(timeline)


def test_redundancy_metrics_follow_each_reading() -> None:
    metrics = Metrics(CONFIG.site_names, members=configured_members(CONFIG))
    metrics.record_redundancy(HEALTHY, assess(HEALTHY, CONFIG))
    assert sample(metrics, "nmpi_failover_cluster_redundant") == 1
    assert sample(metrics, "nmpi_failover_sync_standby_present") == 1
    assert sample(metrics, "nmpi_failover_replica_lag_bytes", member="castor-db-1") == 0
    assert sample(metrics, "nmpi_failover_replica_lag_bytes", member="jusuf-db-1") == 0
    assert sample(metrics, "nmpi_failover_replica_timeline", member="jusuf-db-1") == 7
    assert sample(metrics, "nmpi_failover_leader_timeline") == 7

    stray = replica(role=MemberRole.REPLICA, lag=5, name="stray-db")
    forked = cluster(replica(role=MemberRole.REPLICA, state="running", lag=5000, timeline=6), stray)
    metrics.record_redundancy(forked, assess(forked, CONFIG))
    assert sample(metrics, "nmpi_failover_cluster_redundant") == 0
    assert sample(metrics, "nmpi_failover_sync_standby_present") == 0
    assert sample(metrics, "nmpi_failover_replica_lag_bytes", member="jusuf-db-1") == 5000
    assert sample(metrics, "nmpi_failover_replica_timeline", member="jusuf-db-1") == 6
    for kind in ("no_sync_standby", "replica_timeline_diverged", "replica_lagging"):
        assert sample(metrics, "nmpi_failover_redundancy_alarm", kind=kind) == 1
    assert sample(metrics, "nmpi_failover_redundancy_alarm", kind="member_missing") == 0
    # Label values come from the config only.
    assert sample(metrics, "nmpi_failover_replica_lag_bytes", member="stray-db") is None

    unknown = cluster(replica(lag=None, timeline=None))
    metrics.record_redundancy(unknown, assess(unknown, CONFIG))
    lag = sample(metrics, "nmpi_failover_replica_lag_bytes", member="jusuf-db-1")
    assert lag is not None
    assert math.isnan(lag)

    metrics.record_redundancy(None, None)  # unreadable: unknown values, alarms kept
    assert sample(metrics, "nmpi_failover_cluster_redundant") == 0
    assert sample(metrics, "nmpi_failover_redundancy_alarm", kind="no_sync_standby") == 0
    metrics.record_redundancy(forked, assess(forked, CONFIG))
    metrics.record_redundancy(None, None)
    assert sample(metrics, "nmpi_failover_redundancy_alarm", kind="replica_lagging") == 1
    timeline = sample(metrics, "nmpi_failover_replica_timeline", member="castor-db-1")
    assert timeline is not None
    assert math.isnan(timeline)
    assert b"nmpi_failover_redundancy_alarm" in metrics.render()


# --- the daemon: logged and journaled when an alarm starts and when it clears -------------


@dataclass
class FakeClock:
    now: float = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


@dataclass
class FakeWorld:
    """Every read answers at once; the lease is another instance's, so nothing is done."""

    cluster: ClusterState | None = HEALTHY
    posts: list[object] = field(default_factory=list)

    async def probe(self, site: SiteConfig, url: str | None = None) -> SiteProbe:
        return SiteProbe(ok=True, latency=0.01)

    async def read_cluster(self) -> ClusterState | None:
        return self.cluster

    async def switchover(self, action: Switchover) -> None:
        self.posts.append(action)

    async def read(self) -> DnsRecord | None:
        return DnsRecord("nmpi.lab.example.", frozenset({CASTOR_IP}))

    async def point(self, address: str, expected_current: frozenset[str]) -> None:
        self.posts.append(address)

    async def refresh(self) -> LeaseState:
        return LeaseState(LeaseStatus.NOT_HELD, holder="witness-2")

    async def peek(self) -> LeaseState:
        return await self.refresh()

    async def release(self) -> None:
        return None


class FakeFloatingIps:
    async def read(self, site: SiteConfig) -> FloatingIpState | None:
        return FloatingIpState(attached_vm=None)

    async def move(self, action: MoveFloatingIp) -> None:
        raise AssertionError("never moved")


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """The daemon's log records, whatever configure_logging did to propagation."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("nmpi_failover.daemon")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(level)


def run_rounds(daemon: Daemon, world: FakeWorld, states: Sequence[ClusterState | None]) -> None:
    async def run() -> None:
        for state in states:
            world.cluster = state
            result = await daemon.run_round()
            assert result.redundancy == assess(state, CONFIG, daemon.lag_trend)
            assert isinstance(daemon.clock, FakeClock)
            daemon.clock.now += CONFIG.interval

    asyncio.run(run())


def test_the_daemon_reports_an_alarm_once_when_it_starts_and_once_when_it_clears(
    tmp_path: Path, records: list[logging.LogRecord]
) -> None:
    world = FakeWorld()
    adapters = Adapters(world, world, world, world, world, FakeFloatingIps())
    journal = Journal(tmp_path / "journal.jsonl")
    daemon = Daemon(CONFIG, adapters, journal=journal, clock=FakeClock())
    forked = cluster(replica(state="running", timeline=6, lag=None))
    run_rounds(daemon, world, [HEALTHY, forked, forked, None, forked, HEALTHY, HEALTHY])
    journal.close()

    redundancy = [r for r in records if r.getMessage().startswith("redundancy")]
    assert [(r.levelname, r.__dict__["kind"], r.__dict__["member"]) for r in redundancy] == [
        ("WARNING", "no_sync_standby", None),
        ("WARNING", "replica_timeline_diverged", "jusuf-db-1"),
        ("INFO", "no_sync_standby", None),
        ("INFO", "replica_timeline_diverged", "jusuf-db-1"),
    ]
    assert redundancy[1].getMessage().startswith("redundancy lost: jusuf-db-1 is on timeline 6")
    assert redundancy[3].getMessage() == (
        "redundancy alarm cleared: replica_timeline_diverged (jusuf-db-1)"
    )
    events = [
        e for e in read_tail(tmp_path / "journal.jsonl", 100) if e["event"].startswith("redund")
    ]
    assert [(e["event"], e["kind"], e["member"], e["site"]) for e in events] == [
        ("redundancy_alarm", "no_sync_standby", None, None),
        ("redundancy_alarm", "replica_timeline_diverged", "jusuf-db-1", "jusuf"),
        ("redundancy_alarm_cleared", "no_sync_standby", None, None),
        ("redundancy_alarm_cleared", "replica_timeline_diverged", "jusuf-db-1", "jusuf"),
    ]
    assert events[1]["detail"].startswith("jusuf-db-1 is on timeline 6")
    assert world.posts == []  # not the lease holder: alarms only
    metrics = daemon.metrics
    assert sample(metrics, "nmpi_failover_cluster_redundant") == 1
    assert sample(metrics, "nmpi_failover_redundancy_alarm", kind="no_sync_standby") == 0


def test_status_summarises_redundancy_events() -> None:
    from nmpi_failover.operations import event_summary

    raised = {
        "event": "redundancy_alarm",
        "kind": "replica_lagging",
        "member": "jusuf-db-1",
        "site": "jusuf",
        "detail": "jusuf-db-1 is 5000 bytes behind the leader",
    }
    assert event_summary(raised) == "replica_lagging jusuf-db-1 is 5000 bytes behind the leader"
    cleared = {"event": "redundancy_alarm_cleared", "kind": "replica_lagging", "member": "x"}
    assert event_summary(cleared) == "replica_lagging x"
