"""Whether the database still has a second copy: a pure assessment of one /cluster reading.

`decide` asks "can the other site take over?" only once the leader's site is down. This asks
every round, while everything still serves: after a cut-off site comes back, its old primary
may sit as a replica on a forked timeline, or no member may replicate synchronously, and the
platform keeps working while one more loss would lose acknowledged commits. Nothing here
acts (repairing a member is Patroni's job or an operator's); it raises alarms that the
daemon turns into metrics, log lines and journal events, and `status` into its report.

Like `decide`, `assess` is a pure function of the observation. The one thing it needs from
earlier rounds, whether a replica's lag keeps rising, is folded into an immutable `LagTrend`
first (`trend.record(cluster)`), as `Memory.observe` does for the site probes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .config import Config
from .model import SYNC_ROLES, ClusterState, Member, MemberRole

# Low-cardinality: the values of the nmpi_failover_redundancy_alarm{kind} label.
RedundancyKind = Literal[
    "no_sync_standby",
    "replica_timeline_diverged",
    "replica_lagging",
    "member_missing",
]

# Only "streaming" means a WAL receiver is connected: since Patroni 3 a replica that runs but
# does not stream (reconnecting, restoring, refused for a forked timeline) reports "running".
STREAMING = "streaming"
# Rises in a row, without a fall, after which a replica's lag counts as growing. Patroni
# refreshes a member's lag once per loop_wait (10 s), so with a 2 s interval five rises span
# about a minute; a busy but healthy replica falls back (often to 0) long before that.
LAG_RISES = 5


def configured_members(config: Config) -> tuple[str, ...]:
    """Every site's db_members, in config order: the only member label values."""
    return tuple(name for site in config.sites for name in site.db_members)


# --- lag across rounds ---------------------------------------------------------------------


@dataclass(frozen=True)
class LagRun:
    """A replica's lag since it last fell."""

    first: int  # bytes when the current run of rises began
    last: int
    rises: int = 0


@dataclass(frozen=True)
class LagTrend:
    runs: Mapping[str, LagRun] = field(default_factory=dict)

    def record(self, cluster: ClusterState | None) -> LagTrend:
        """Fold one reading in. An unchanged lag neither counts nor resets (Patroni has not
        refreshed it yet); a fall, an unknown lag, leadership or absence restarts the run."""
        if cluster is None:
            return self  # nothing read: no evidence either way
        runs: dict[str, LagRun] = {}
        for member in cluster.members:
            lag = member.lag_bytes
            if member.role is MemberRole.LEADER or lag is None:
                continue
            before = self.runs.get(member.name)
            if before is None or lag < before.last:
                runs[member.name] = LagRun(lag, lag)
            elif lag > before.last:
                runs[member.name] = LagRun(before.first, lag, before.rises + 1)
            else:
                runs[member.name] = before
        return LagTrend(runs)

    def growing(self, member: str) -> LagRun | None:
        run = self.runs.get(member)
        return run if run is not None and run.rises >= LAG_RISES else None


# --- the assessment ------------------------------------------------------------------------


@dataclass(frozen=True)
class RedundancyAlarm:
    kind: RedundancyKind
    member: str | None  # None: about the cluster as a whole (no_sync_standby)
    site: str | None
    message: str  # what it means, what Patroni does by itself, what to do if it does not

    @property
    def key(self) -> tuple[str, str | None]:
        """Identity across rounds: the message changes with the lag, the alarm does not."""
        return (self.kind, self.member)


@dataclass(frozen=True)
class Redundancy:
    alarms: tuple[RedundancyAlarm, ...]
    sync_standby: str | None  # the streaming synchronous standby, if any
    leader_timeline: int | None

    @property
    def ok(self) -> bool:
        return not self.alarms


def assess(
    cluster: ClusterState | None, config: Config, trend: LagTrend | None = None
) -> Redundancy | None:
    """The redundancy one /cluster reading shows; None when Patroni was unreadable (unknown).

    `trend` must already hold this reading (`LagTrend.record`); without one (`status`, a
    single reading) a replica's lag is judged against max_replica_lag_bytes only."""
    if cluster is None:
        return None
    trend = trend if trend is not None else LagTrend()
    scope = cluster.scope or "<scope>"
    leader = cluster.leader
    alarms: list[RedundancyAlarm] = []
    sync = next((m for m in cluster.members if m.role in SYNC_ROLES and m.state == STREAMING), None)
    if sync is None:
        alarms.append(_no_sync_standby(cluster, leader))
    if leader is not None:
        for member in cluster.members:
            if member is not leader:
                alarms += _replica_alarms(member, leader, config, trend, scope)
    present = {m.name for m in cluster.members}
    for site in config.sites:
        for name in site.db_members:
            if name not in present:
                alarms.append(_missing(name, site.name))
    return Redundancy(
        tuple(alarms), sync.name if sync else None, leader.timeline if leader else None
    )


def _no_sync_standby(cluster: ClusterState, leader: Member | None) -> RedundancyAlarm:
    if leader is None:
        return RedundancyAlarm(
            "no_sync_standby",
            None,
            None,
            "the cluster has no single leader, so nothing replicates synchronously; Patroni "
            "elects a leader by itself within its ttl (see the no_leader alarm)",
        )
    replicas = [f"{m.name} {m.role} {m.state or '?'}" for m in cluster.members if m is not leader]
    seen = f" (replicas: {', '.join(replicas)})" if replicas else " (the leader has no replica)"
    return RedundancyAlarm(
        "no_sync_standby",
        None,
        None,
        f"no synchronous standby is streaming{seen}: the leader {leader.name} acknowledges "
        "commits alone, and losing it now loses them. Patroni makes a streaming replica the "
        "synchronous standby by itself within a loop_wait; if no replica streams, see the "
        "other alarms and the replicas' Patroni logs",
    )


def _replica_alarms(
    member: Member, leader: Member, config: Config, trend: LagTrend, scope: str
) -> list[RedundancyAlarm]:
    reinit = f"`patronictl reinit {scope} {member.name}`"
    alarms = []
    if None not in (member.timeline, leader.timeline) and member.timeline != leader.timeline:
        streaming = "" if member.state == STREAMING else f", and it is {member.state or '?'}"
        alarms.append(
            RedundancyAlarm(
                "replica_timeline_diverged",
                member.name,
                member.site,
                f"{member.name} is on timeline {member.timeline}, the leader {leader.name} on "
                f"{leader.timeline}{streaming}: it is not a copy of the leader and cannot be "
                "promoted without losing data. Right after a failover it clears by itself "
                "once the replica replays the switch; an old primary whose history forked "
                "(back from a cut-off) is rewound by Patroni (pg_rewind) and rejoins. If it "
                f"stays, rebuild it from the leader: {reinit}",
            )
        )
    lag, limit = member.lag_bytes, config.max_replica_lag_bytes
    growing = trend.growing(member.name)
    if lag is not None and lag > limit:
        why = (
            f"{member.name} is {lag} bytes behind the leader, more than "
            f"max_replica_lag_bytes {limit}"
        )
    elif growing is not None:
        why = (
            f"{member.name}'s lag rose in each of its last {growing.rises} readings "
            f"({growing.first} -> {growing.last} bytes): it does not keep up with the leader"
        )
    else:
        return alarms
    if member.role in SYNC_ROLES:  # the leader's commits wait for it: none is lost, all slow
        cost = "every commit on the leader waits for it"
    else:
        cost = "a failover to it could lose commits"
    alarms.append(
        RedundancyAlarm(
            "replica_lagging",
            member.name,
            member.site,
            f"{why}, so {cost}. Patroni does not act on lag; the replica catches up by itself "
            "once its network, disk or WAL receiver recover. If it cannot (the WAL it needs "
            f"is gone), rebuild it from the leader: {reinit}",
        )
    )
    return alarms


def _missing(name: str, site: str) -> RedundancyAlarm:
    return RedundancyAlarm(
        "member_missing",
        name,
        site,
        f"{name} (a db member of {site}) is not in Patroni's /cluster: its Patroni is stopped "
        "or has lost etcd (its member key expired), so it holds no current copy. Patroni "
        "cannot fix this by itself: start that member's Patroni and check it reaches etcd; "
        "it then rejoins as a replica (pg_rewind if its history forked)",
    )


def alarm_changes(
    before: Mapping[tuple[str, str | None], RedundancyAlarm], now: Redundancy
) -> tuple[list[RedundancyAlarm], list[RedundancyAlarm]]:
    """(raised, cleared) between the alarms held so far and this round's."""
    keys = {alarm.key for alarm in now.alarms}
    raised = [alarm for alarm in now.alarms if alarm.key not in before]
    cleared = [alarm for key, alarm in before.items() if key not in keys]
    return raised, cleared
