"""The decision: a pure function from one round's observation to at most one action.

Level-triggered, like Patroni's own loop: observe -> decide -> act, every round, from scratch.
Patroni's cluster state is the one source of truth for where the database leader is; this
module converges the public name onto that site, moves the name to the other site first when
the leader's site stops serving, asks Patroni to move the leader when that helps, and
otherwise raises alarms. Each round yields a single decision; whatever is left (e.g. the
switchover after the name moved) is done in a later round from a fresh observation, never
from remembered state.

When the leader's site is down (failures_to_down failed probes in a row):

1. a standby web VM inside that site takes its floating IP first, if one answers;
2. the other site serves (/readyz 200: its API writes through the leader, wherever that
   is): the name moves there at once, and once it is there, Patroni is asked to move the
   leader too if that site's member is in sync (an unplanned Switchover);
3. the other site answers but does not serve (e.g. 503: its API reaches no writable
   database, the leader being cut off) and its member is the synchronous standby, in sync:
   the name moves there ahead of the promotion, since Patroni promotes the synchronous
   standby by itself once the lost leader's key expires (ttl, 20 s at least). Users' resolvers
   then follow during the key's expiry instead of after it: they wait expiry + promotion
   instead of expiry + promotion + detection + their TTL. Nothing is asked of Patroni;
4. otherwise an alarm, no change.

Why moving the name early is safe: the name only chooses which site's web tier users
reach; the API at either site writes to the Patroni leader, wherever it is (libpq
target_session_attrs=read-write), so a move never changes where writes go nor risks two
writers. A premature or wrong move (Patroni does not promote after all: paused, a nofailover
tag, the old leader back in time) costs at most the users' TTL: the leader's site serving
again moves the name back onto it (the leader's site wins whenever it serves), and the other
site answered users with an error, no worse than the silent site. A short blip moves nothing:
the site must fail failures_to_down probes in a row (3 probes 2 s apart, 1.5 s timeout), so a
3 s flap of a site or of the link to it never reaches "down". The database itself never fails
back by itself.

Once everything is converged, one low-priority action remains: keeping the etcd raft
leader off the database leader's site (`MoveEtcdLeader`, which explains why).

What crosses rounds lives in `Memory`: the per-site failure counts, which requests are in
flight, so a slow Patroni promotion is not asked for again every round, and when the etcd
leader was last moved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from .config import Config
from .health import HealthBook, SiteStatus
from .model import (
    FOLLOWING_STATES,
    STREAMING,
    SYNC_ROLES,
    ClusterState,
    DnsRecord,
    EtcdLeaderView,
    LeaseStatus,
    Member,
    MemberRole,
    Observation,
)

# Low-cardinality labels: they become Prometheus label values.
SwitchReason = Literal["leader_site_down", "planned", "failback"]
AlarmCondition = Literal[
    "etcd_unreachable",
    "cluster_unreadable",
    "no_leader",
    "leader_unmapped",
    "dns_unreadable",
    "both_sites_down",
    "standby_site_unhealthy",
    "replica_not_in_sync",
]


@dataclass(frozen=True)
class NoAction:
    """Nothing to change (converged, waiting, or not allowed to act)."""

    reason: str
    kind: Literal["no_action"] = field(default="no_action", init=False)


@dataclass(frozen=True)
class Alarm:
    """Change nothing, and tell a human: the situation needs one."""

    condition: AlarmCondition
    reason: str
    kind: Literal["alarm"] = field(default="alarm", init=False)


@dataclass(frozen=True)
class PointDns:
    """Point the public name at `address`, only if it still holds `expected_current`."""

    site: str
    address: str
    # Compare-and-swap prerequisite: the addresses this decision saw (empty: no record).
    expected_current: frozenset[str]
    reason: str
    kind: Literal["point_dns"] = field(default="point_dns", init=False)


@dataclass(frozen=True)
class Switchover:
    """Ask Patroni to move the leader; DNS follows in a later round, once it has moved."""

    from_site: str
    to_site: str
    leader: str  # current leader member
    candidate: str  # member at to_site to promote
    reason: SwitchReason
    detail: str
    # Planned: graceful switchover from a running leader (zero data loss). Unplanned: the
    # leader's site is down; the actuator may need Patroni's failover endpoint instead.
    planned: bool
    kind: Literal["switchover"] = field(default="switchover", init=False)


@dataclass(frozen=True)
class MoveFloatingIp:
    """Re-associate a site's floating IP with a healthy standby web VM (the site's Neutron)."""

    site: str
    address: str  # the floating IP
    from_vm: str | None
    to_vm: str
    reason: str
    kind: Literal["move_floating_ip"] = field(default="move_floating_ip", init=False)


@dataclass(frozen=True)
class MoveEtcdLeader:
    """Hand the etcd raft leadership from the member at the database leader's site to a
    neutral member (the witness): etcd's own leadership transfer (MoveLeader, the JSON
    gateway's POST /v3/maintenance/transfer-leadership), sent to the current leader.

    Why: Patroni's leader key lives on an etcd lease (its ttl, 20 s in the lab), and etcd
    renews every lease to its full TTL when a new raft leader takes over (lessor.Promote).
    If the database leader's site is cut off while the etcd leader is that site's member,
    the other two members elect a new etcd leader, which renews the lost leader's key: the
    promotion at the other site then comes up to a whole ttl later than it would have (about
    27 s after the cut instead of about 20 s in the lab). With the etcd leader at the witness,
    losing a database site costs no etcd election, and the key runs out on time.

    Why it is safe: a planned, graceful raft operation. The leader first brings the target
    up to date, then lets it campaign at once; quorum, membership and data are unchanged, and
    writes pause for at most an election timeout (Patroni retries them). A failed or refused
    transfer changes nothing (the old leader stays). It is only ever decided when everything
    else is converged and the acting lease is held, and at most once per
    etcd.leader_move_interval."""

    from_member: str
    to_member: str
    from_id: str  # etcd member IDs in hex, as etcdctl prints them
    to_id: str
    reason: str
    kind: Literal["move_etcd_leader"] = field(default="move_etcd_leader", init=False)


Decision = NoAction | Alarm | PointDns | Switchover | MoveFloatingIp | MoveEtcdLeader
# The decisions that change something.
Action = PointDns | Switchover | MoveFloatingIp | MoveEtcdLeader


@dataclass(frozen=True)
class Refusal:
    """Why a requested switchover or failback will not be done (now).

    `wait_for` is set when the refusal is about the target's member only and may resolve by
    itself within seconds (e.g. the old primary that rejoined as a plain replica, which the
    leader makes its synchronous standby at its next loop): what to wait for, as
    "castor-db-1 to become the synchronous standby (replica, streaming, lag 0)". None: waiting
    would not help (unknown site, the leader already there, the target site not serving, ...)."""

    reason: str
    wait_for: str | None = None


def is_action(decision: Decision) -> bool:
    return isinstance(decision, PointDns | Switchover | MoveFloatingIp | MoveEtcdLeader)


def to_event(decision: Decision | Refusal) -> dict[str, object]:
    """JSON-ready form for logs and the journal."""
    event: dict[str, object] = asdict(decision)
    if isinstance(decision, Refusal):
        event["kind"] = "refusal"
    for key, value in event.items():
        if isinstance(value, frozenset):
            event[key] = sorted(value)
    return event


# --- memory across rounds ------------------------------------------------------------------


@dataclass(frozen=True)
class PendingSwitchover:
    to_site: str
    requested_at: float


@dataclass(frozen=True)
class Memory:
    health: HealthBook
    pending: PendingSwitchover | None = None
    # Sites whose floating IP was moved during the current down spell: moved once only, so
    # a move that does not help cannot hold off a switchover forever.
    fip_moved: frozenset[str] = frozenset()
    # When the etcd leader was last asked to move (successful or not): not again within
    # etcd.leader_move_interval.
    etcd_moved_at: float | None = None

    @classmethod
    def start(cls, config: Config) -> Memory:
        return cls(HealthBook.start(config.site_names, config.failures_to_down))

    def observe(self, observation: Observation) -> Memory:
        """Fold a round's observation in; call before `decide` with the same observation."""
        health = self.health.record(observation.probes, observation.taken_at)
        pending = self.pending
        leader = observation.cluster.leader if observation.cluster else None
        if pending is not None and leader is not None and leader.site == pending.to_site:
            pending = None  # the leader arrived: the request is done
        fip_moved = frozenset(s for s in self.fip_moved if health.status(s) is not SiteStatus.UP)
        return replace(self, health=health, pending=pending, fip_moved=fip_moved)

    def acted(self, decision: Decision, now: float, *, succeeded: bool = True) -> Memory:
        """Record an attempted action, after the daemon carried it out (or tried to)."""
        if isinstance(decision, Switchover) and succeeded:
            return replace(self, pending=PendingSwitchover(decision.to_site, now))
        if isinstance(decision, MoveFloatingIp):
            return replace(self, fip_moved=self.fip_moved | {decision.site})
        if isinstance(decision, MoveEtcdLeader):
            return replace(self, etcd_moved_at=now)
        return self


# --- shared checks -------------------------------------------------------------------------


def _sync_problem(member: Member, leader: Member, config: Config) -> str | None:
    """Why `member` cannot take over from `leader` without losing data; None if it can."""
    if member.role is MemberRole.LEADER:
        return "is a leader itself"
    if member.state not in FOLLOWING_STATES:
        return f"state is {member.state!r}"
    if None not in (member.timeline, leader.timeline) and member.timeline != leader.timeline:
        return f"on timeline {member.timeline}, the leader on {leader.timeline}"
    if member.role is MemberRole.SYNC_STANDBY:
        # Holds every acknowledged commit, streaming or not: Patroni removes a standby from
        # its /sync key before from synchronous_standby_names, so a member the DCS shows as
        # sync_standby confirmed every commit the leader acknowledged. It may show "running"
        # (since Patroni 3: not streaming): a standby whose leader was cut off stops streaming
        # after wal_receiver_timeout, and that is exactly when it must stay a candidate; Patroni
        # itself promotes it then.
        return None
    # Judged by lag, which only tells about a replica that keeps receiving: since Patroni 3 a
    # "running" replica does not stream (reconnecting, restoring from an archive, refused for
    # a forked timeline, whose lag /cluster then shows as 0 when it is ahead), so it falls
    # further behind than its last lag says, or is no copy of the leader at all. Patroni before
    # 3 reported "running" for every replica: there a human decides (the alarm), which is the
    # safe side.
    if member.state != STREAMING:
        return f"state is {member.state!r}, not streaming (judged by lag, it must stream)"
    if member.lag_bytes is None:
        return "replication lag unknown"
    if member.lag_bytes > config.max_replica_lag_bytes:
        limit = config.max_replica_lag_bytes
        return f"lag {member.lag_bytes} bytes > max_replica_lag_bytes {limit}"
    return None


def in_sync_candidate(cluster: ClusterState, site: str, config: Config) -> Member | str:
    """The best member at `site` to promote, or why none is in sync."""
    leader = cluster.leader
    if leader is None:
        return "the cluster has no leader"
    members = cluster.members_at(site)
    if not members:
        return f"no database member at {site}"
    good: list[Member] = []
    problems: list[str] = []
    for member in members:
        problem = _sync_problem(member, leader, config)
        if problem is None:
            good.append(member)
        else:
            problems.append(f"{member.name} {problem}")
    if not good:
        return "; ".join(problems)
    # Prefer a synchronous standby, then the smallest lag.
    good.sort(key=lambda m: (m.role is not MemberRole.SYNC_STANDBY, m.lag_bytes or 0))
    return good[0]


def synchronous_mode(cluster: ClusterState) -> bool:
    """Whether Patroni replicates synchronously (synchronous_mode on, or quorum).

    Patroni's dynamic configuration (GET /config) says so when it was read. Else a member
    with a synchronous role tells: /cluster shows sync_standby or quorum_standby only in
    synchronous mode (patroni/utils.py cluster_as_json). Their absence proves nothing: right
    after a role change no member has one until the new leader's next loop, which is when
    the question matters; an unread /config then counts as asynchronous, and a switchover
    Patroni refuses for it is retried (`operations.planned_switchover`)."""
    if cluster.synchronous_mode is not None:
        return cluster.synchronous_mode
    return any(m.role in SYNC_ROLES for m in cluster.members)


def describe_member(member: Member) -> str:
    """'replica, streaming, lag 0': what a member's readiness turns on, for messages."""
    lag = "unknown" if member.lag_bytes is None else str(member.lag_bytes)
    return f"{member.role}, {member.state or 'no state'}, lag {lag}"


def patroni_refusal(cluster: ClusterState, member: Member) -> str | None:
    """Why Patroni would refuse a planned switchover to `member` now; None if it would not.

    In synchronous mode (not quorum commit) Patroni's POST /switchover takes only a member of
    its /sync key, else 412 "candidate name does not match with sync_standby" (patroni/api.py
    is_failover_possible); /cluster shows that member as sync_standby. Under quorum commit
    Patroni itself would take any member, but only the quorum_standby members confirmed the
    leader's commits, so a planned move waits for one of them too. In asynchronous mode
    Patroni takes any healthy replica: `_sync_problem`'s lag rule is the whole check."""
    if synchronous_mode(cluster) and member.role not in SYNC_ROLES:
        return (
            f"is not the synchronous standby ({describe_member(member)}); in synchronous "
            "mode Patroni switches over only to its synchronous standby, which the leader "
            "names among its streaming replicas at its next loop"
        )
    return None


def switchover_candidate(cluster: ClusterState, site: str, config: Config) -> Member | Refusal:
    """The member at `site` a planned switchover goes to now, or why none (a Refusal whose
    `wait_for` says what to wait for). In sync (`in_sync_candidate`) and, in synchronous
    mode, the synchronous standby (`patroni_refusal`). Only for planned moves: the daemon's
    unplanned switchover (the leader's site down) keeps `in_sync_candidate` alone."""
    sync = synchronous_mode(cluster)

    def goal(member: Member | None) -> str:
        named = member is not None and member.role in SYNC_ROLES
        return "become the synchronous standby" if sync and not named else "be in sync"

    candidate = in_sync_candidate(cluster, site, config)
    if isinstance(candidate, str):
        members = cluster.members_at(site)
        if cluster.leader is None or any(m.role is MemberRole.LEADER for m in members):
            return Refusal(f"{site} is not in sync ({candidate})")
        if not members:
            awaited = f"a database member at {site} to appear in Patroni's /cluster"
        elif len(members) == 1:
            member = members[0]
            awaited = f"{member.name} to {goal(member)} ({describe_member(member)})"
        else:
            each = "; ".join(f"{m.name}: {describe_member(m)}" for m in members)
            awaited = f"a member at {site} to {goal(None)} ({each})"
        return Refusal(f"{site} is not in sync ({candidate})", wait_for=awaited)
    problem = patroni_refusal(cluster, candidate)
    if problem is not None:
        return Refusal(
            f"{candidate.name} at {site} {problem}",
            wait_for=f"{candidate.name} to {goal(candidate)} ({describe_member(candidate)})",
        )
    return candidate


def _stale(observation: Observation, config: Config, now: float) -> str | None:
    age = now - observation.taken_at
    if age < 0:
        return f"observation is dated {-age:.1f} s in the future; not acting on it"
    if age > config.observation_max_age:
        return (
            f"observation is stale ({age:.1f} s old, more than the round deadline of "
            f"{config.round_deadline:g} s plus one interval of {config.interval:g} s); "
            "not acting on it"
        )
    return None


def _gate(observation: Observation, config: Config, now: float) -> Decision | None:
    """Whether this instance may act on this observation at all."""
    lease = observation.lease
    if lease.status is LeaseStatus.ETCD_UNREACHABLE:
        return Alarm("etcd_unreachable", "etcd quorum unreachable: observing only, no actions")
    if lease.status is LeaseStatus.NOT_HELD:
        holder = lease.holder or "nobody"
        return NoAction(f"not the acting instance (lease held by {holder}): observing only")
    if lease.valid_until is None or now >= lease.valid_until:
        return NoAction("the acting lease has expired: observing only until it is renewed")
    stale = _stale(observation, config, now)
    if stale:
        return NoAction(stale)
    missing = [s for s in config.site_names if s not in observation.probes]
    if missing:
        return NoAction(f"observation has no probe for {', '.join(missing)}; not acting on it")
    return None


def _fip_repair(
    site: str, observation: Observation, memory: Memory, config: Config
) -> MoveFloatingIp | None:
    """Move a down site's floating IP to a healthy standby web VM, if that can help."""
    fip = config.site(site).floating_ip
    state = observation.floating_ips.get(site)
    if fip is None or state is None or site in memory.fip_moved:
        return None
    attached = state.attached_vm
    attached_probe = state.vm_probes.get(attached) if attached else None
    if attached_probe is not None and attached_probe.ok:
        return None  # the VM answers directly: the fault is on the path, another VM won't help
    for vm in fip.web_vms:  # config order is preference order
        probe = state.vm_probes.get(vm.name)
        if vm.name != attached and probe is not None and probe.ok:
            return MoveFloatingIp(
                site=site,
                address=config.site(site).address,
                from_vm=attached,
                to_vm=vm.name,
                reason=f"{site} is down and its web VM {attached or '(none)'} fails; "
                f"{vm.name} answers",
            )
    return None


def _point_at(site: str, dns: DnsRecord, config: Config, reason: str) -> PointDns | None:
    """The name to `site`, unless it already points there alone (then None)."""
    address = config.site(site).address
    if dns.addresses == frozenset({address}):
        return None
    return PointDns(site=site, address=address, expected_current=dns.addresses, reason=reason)


def _ahead_of_promotion(
    here: str,
    there: str,
    observation: Observation,
    cluster: ClusterState,
    config: Config,
    failures: int,
) -> PointDns | str:
    """The name to `there` ahead of Patroni's own promotion, or why not.

    Only when `there` answers at all (its web tier is up, waiting for a writable database)
    and its member is the synchronous standby, in sync: the member Patroni promotes by itself
    once the leader's key expires (with synchronous mode active only the members of the /sync
    key race for it, patroni/ha.py is_healthiest_node; an async replica may not be promoted,
    and quorum commit is not what these sites run). Its WAL receiver may have given up
    already ("running"): `_sync_problem` accepts that for a synchronous standby."""
    probe = observation.probes[there]
    if probe.status_code is None:
        return f"{there} does not answer ({probe.error or 'no HTTP response'})"
    candidate = in_sync_candidate(cluster, there, config)
    if isinstance(candidate, str):
        return f"{there} is not in sync ({candidate})"
    if candidate.role is not MemberRole.SYNC_STANDBY:
        return (
            f"{candidate.name} at {there} is a {candidate.role}, not the synchronous standby "
            "Patroni would promote"
        )
    if observation.dns is None:
        return "the public DNS record is unreadable"
    point = _point_at(
        there,
        observation.dns,
        config,
        f"leader site {here} is down ({failures} failed probes in a row); {there} answers "
        f"(HTTP {probe.status_code}) and {candidate.name} is its synchronous standby, in sync. "
        "The name moves ahead of the promotion: Patroni promotes the synchronous standby "
        "when the leader key expires",
    )
    if point is None:
        return f"the name is already at {there}, ahead of Patroni's promotion of {candidate.name}"
    return point


def etcd_leader_move(
    view: EtcdLeaderView | None, here: str, memory: Memory, config: Config, now: float
) -> MoveEtcdLeader | str | None:
    """The etcd leader off `here` (the database leader's site) to a neutral member; else a
    reason it stays (str), or None when it is not at `here` at all (or unknown)."""
    if view is None or view.site != here:
        return None
    etcd = config.etcd
    if not etcd.keep_leader_off_database_sites:
        return None
    leader = view.member(view.leader_id)
    if leader is None or not leader.answered:
        return f"the etcd leader {view.leader} at {here} does not answer; it stays"
    targets = [m for m in view.neutral if m.answered and not m.learner]
    if not targets:
        return f"the etcd leader {view.leader} is at {here} and no neutral member answers"
    last = memory.etcd_moved_at
    if last is not None and now - last < etcd.leader_move_interval:
        return (
            f"the etcd leader {view.leader} is at {here}; moved {now - last:.0f} s ago, not "
            f"again within {etcd.leader_move_interval:g} s"
        )
    target = targets[0]
    return MoveEtcdLeader(
        from_member=view.leader,
        to_member=target.name,
        from_id=f"{view.leader_id:x}",
        to_id=f"{target.id:x}",
        reason=f"the etcd raft leader {view.leader} is at {here}, the database leader's "
        f"site: losing {here} would cost an etcd election, which renews Patroni's leader key "
        f"to its full ttl and delays the promotion; {target.name} is neutral and answers",
    )


# --- the controller's decision -------------------------------------------------------------


def decide(observation: Observation, memory: Memory, config: Config, now: float) -> Decision:
    """One round's decision. `memory` must already hold this observation (Memory.observe)."""
    if memory.health.observed_at != observation.taken_at:
        raise ValueError("memory does not include this observation; call Memory.observe first")
    gate = _gate(observation, config, now)
    if gate is not None:
        return gate

    cluster = observation.cluster
    if cluster is None:
        return Alarm(
            "cluster_unreadable", "Patroni cluster state unreadable at every site; no change"
        )
    leader = cluster.leader
    pending = memory.pending
    waiting = pending is not None and now - pending.requested_at < config.switchover_timeout
    if leader is None:
        if pending is not None and waiting:
            return NoAction(f"waiting for Patroni to promote a leader at {pending.to_site}")
        return Alarm("no_leader", "the database cluster has no leader; no change")
    if leader.site is None:
        return Alarm(
            "leader_unmapped",
            f"leader {leader.name} is in no site's db_members; no change",
        )

    here = leader.site
    there = config.other_site(here)
    health = memory.health
    here_status, there_status = health.status(here), health.status(there)

    if pending is not None and pending.to_site != here and waiting:
        waited = now - pending.requested_at
        return NoAction(
            f"waiting for the leader to move from {here} to {pending.to_site} "
            f"(asked {waited:.0f} s ago)"
        )

    if here_status is SiteStatus.UP:
        # Converge the name onto the leader's site; never back to the preferred site.
        if observation.dns is None:
            return Alarm("dns_unreadable", "cannot read the public DNS record; no change")
        address = config.site(here).address
        if observation.dns.addresses != frozenset({address}):
            return PointDns(
                site=here,
                address=address,
                expected_current=observation.dns.addresses,
                reason=f"the leader {leader.name} is at {here}, which serves healthy",
            )
        if there_status is SiteStatus.DOWN:
            repair = _fip_repair(there, observation, memory, config)
            if repair is not None:
                return repair
        converged = f"converged: leader and public name at {here}; {there} is {there_status}"
        move = etcd_leader_move(observation.etcd_leader, here, memory, config, now)
        if isinstance(move, MoveEtcdLeader):
            return move
        return NoAction(f"{converged}; {move}" if move else converged)

    if here_status is not SiteStatus.DOWN:
        failures = health.failures(here)
        return NoAction(
            f"leader site {here} is {here_status} ({failures}/{config.failures_to_down} "
            f"failed probes); waiting"
        )

    # The leader's site is down. A standby web VM inside it comes first: it keeps everything
    # where it is.
    repair = _fip_repair(here, observation, memory, config)
    if repair is not None:
        return repair
    failures = health.failures(here)
    if there_status is not SiteStatus.UP:
        ahead = _ahead_of_promotion(here, there, observation, cluster, config, failures)
        if isinstance(ahead, PointDns):
            return ahead
        if there_status is SiteStatus.DOWN:
            return Alarm(
                "both_sites_down", f"both {here} and {there} are down ({ahead}); no change"
            )
        return Alarm(
            "standby_site_unhealthy",
            f"leader site {here} is down and {there} is {there_status} ({ahead}); no change",
        )
    # `there` serves: the name moves there first, so users are served at once, whatever
    # Patroni does next. The switchover (if its member is in sync) follows in a later round,
    # once the name is there. An unreadable record does not hold the switchover up.
    point = (
        None
        if observation.dns is None
        else _point_at(
            there,
            observation.dns,
            config,
            f"leader site {here} is down ({failures} failed probes in a row) and {there} "
            f"serves healthy: the name moves to {there} first; its API writes through the "
            f"leader {leader.name} wherever it is",
        )
    )
    if point is not None:
        return point
    candidate = in_sync_candidate(cluster, there, config)
    if isinstance(candidate, str):
        return Alarm(
            "replica_not_in_sync",
            f"leader site {here} is down but {there} is not in sync ({candidate}); no change",
        )
    retry = " (again: the last request did not complete)" if pending is not None else ""
    return Switchover(
        from_site=here,
        to_site=there,
        leader=leader.name,
        candidate=candidate.name,
        reason="leader_site_down",
        detail=f"leader site {here} failed {failures} probes in a row; "
        f"{there} serves healthy and {candidate.name} is in sync{retry}",
        planned=False,
    )


# --- planned moves for the CLI -------------------------------------------------------------


def plan_switchover(
    observation: Observation,
    target: str,
    config: Config,
    now: float,
    *,
    reason: SwitchReason = "planned",
) -> Switchover | Refusal:
    """A planned, zero-data-loss switchover to `target`, or why it must not be done."""
    if target not in config.site_names:
        return Refusal(f"unknown site {target!r}; the sites are {', '.join(config.site_names)}")
    stale = _stale(observation, config, now)
    if stale:
        return Refusal(stale)
    cluster = observation.cluster
    if cluster is None:
        return Refusal("Patroni cluster state unreadable at every site")
    leader = cluster.leader
    if leader is None:
        return Refusal("the database cluster has no leader")
    if leader.site is None:
        return Refusal(f"leader {leader.name} is in no site's db_members")
    if leader.site == target:
        return Refusal(f"the leader {leader.name} is already at {target}")
    if leader.state != "running":
        return Refusal(f"the leader {leader.name} is {leader.state!r}, not running")
    probe = observation.probes.get(target)
    if probe is None or not probe.ok:
        why = probe.error if probe and probe.error else "no successful probe"
        return Refusal(f"{target} does not serve healthy ({why})")
    candidate = switchover_candidate(cluster, target, config)
    if isinstance(candidate, Refusal):
        return candidate
    standby = " (the synchronous standby)" if candidate.role in SYNC_ROLES else ""
    return Switchover(
        from_site=leader.site,
        to_site=target,
        leader=leader.name,
        candidate=candidate.name,
        reason=reason,
        detail=f"{reason} switchover requested; {candidate.name} at {target} is in sync{standby}",
        planned=True,
    )


def plan_failback(observation: Observation, config: Config, now: float) -> Switchover | Refusal:
    """Failback is a planned switchover to the preferred site, only ever on request."""
    return plan_switchover(observation, config.preferred_site, config, now, reason="failback")
