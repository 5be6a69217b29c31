"""Immutable observations: what one round saw, handed from the adapters to the decision.

Times are seconds on the daemon's monotonic clock (the same clock `decide` gets as `now`),
so an observation's age and a lease's expiry never depend on wall-clock jumps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class SiteProbe:
    """One HTTPS /readyz probe of a site (or of one web VM) from the failover host.

    `ok` only on HTTP 200. `status_code` tells a web tier that answered (e.g. 503: its API
    reaches no writable database yet) from one that did not answer at all (None: connect
    error, timeout, TLS failure), which `decide` needs to move the name ahead of a Patroni
    promotion."""

    ok: bool
    latency: float | None = None  # seconds until the response; None when there was none
    error: str | None = None  # why it failed: timeout, TLS, HTTP status, ...
    status_code: int | None = None  # the HTTP status when a response came back, else None

    @property
    def answered(self) -> bool:
        """Whether the web tier sent an HTTP response at all (whatever its status)."""
        return self.status_code is not None


class MemberRole(StrEnum):
    LEADER = "leader"
    SYNC_STANDBY = "sync_standby"  # synchronous replica: has every acknowledged commit
    QUORUM_STANDBY = "quorum_standby"  # Patroni quorum commit: judged by lag, like a replica
    REPLICA = "replica"


# The roles of the members in Patroni's /sync key: the synchronous standby ("sync_standby"),
# or under quorum commit (Patroni 4, synchronous_mode: quorum) "quorum_standby". /cluster
# shows them only while synchronous mode is on.
SYNC_ROLES = frozenset({MemberRole.SYNC_STANDBY, MemberRole.QUORUM_STANDBY})

# Patroni member states of a replica that still follows the leader's timeline. "streaming"
# (Patroni 3 and later): its WAL receiver is connected. "running": before Patroni 3 every
# replica; since Patroni 3 a replica whose WAL receiver is not connected, e.g. the synchronous
# standby of a leader that was just cut off (wal_receiver_timeout, then its next loop). Which
# of them may be promoted is `decide._sync_problem`'s call.
STREAMING = "streaming"
FOLLOWING_STATES = frozenset({STREAMING, "running"})


@dataclass(frozen=True)
class Member:
    name: str
    site: str | None  # from the configured db_members; None for a member no site lists
    role: MemberRole
    state: str  # Patroni's state string: running, streaming, stopped, starting, ...
    lag_bytes: int | None = None  # replication lag; None when Patroni reports it unknown
    timeline: int | None = None


@dataclass(frozen=True)
class ClusterState:
    """Patroni's /cluster view: the single source of truth for where the leader is."""

    members: tuple[Member, ...]
    scope: str | None = None  # Patroni's cluster name, for the patronictl commands we suggest
    # Whether Patroni's dynamic configuration (GET /config) asks for synchronous replication
    # (synchronous_mode on, or quorum); None when it was not read. See
    # `decide.synchronous_mode` for what is assumed then.
    synchronous_mode: bool | None = None

    @property
    def leader(self) -> Member | None:
        leaders = [m for m in self.members if m.role is MemberRole.LEADER]
        # Two leaders cannot be trusted to pick from: treat as "no leader".
        return leaders[0] if len(leaders) == 1 else None

    @property
    def leader_name(self) -> str | None:
        leader = self.leader
        return leader.name if leader else None

    def members_at(self, site: str) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.site == site)


@dataclass(frozen=True)
class DnsRecord:
    """The public name's current address records, as the authoritative server answers."""

    name: str
    addresses: frozenset[str]  # empty when the name has no A/AAAA records
    ttl: int | None = None


class LeaseStatus(StrEnum):
    HELD = "held"  # this instance is the acting leader
    NOT_HELD = "not_held"  # another instance holds it (or nobody yet)
    ETCD_UNREACHABLE = "etcd_unreachable"  # no quorum reachable: nobody may act from here


@dataclass(frozen=True)
class LeaseState:
    status: LeaseStatus
    holder: str | None = None  # the acting instance's name, when known
    # When a held lease runs out unless renewed (monotonic seconds): acting past it would
    # overlap with a successor's actions.
    valid_until: float | None = None


@dataclass(frozen=True)
class FloatingIpState:
    """A site's floating IP and its web VMs, read from that site's own Neutron and probes."""

    attached_vm: str | None  # web VM the floating IP is associated with, None if unattached
    vm_probes: Mapping[str, SiteProbe] = field(default_factory=dict)  # direct probe per VM


@dataclass(frozen=True)
class EtcdMemberView:
    """One etcd member as this round saw it."""

    name: str
    id: int  # etcd's member ID (uint64; etcdctl prints it in hex)
    site: str | None  # the site whose db_members list its name; None: neutral (the witness)
    answered: bool  # answered /v3/maintenance/status this round (started, reachable)
    learner: bool = False  # a learner cannot be the raft leader


@dataclass(frozen=True)
class EtcdLeaderView:
    """Where the etcd raft leader is: at a database site, or at a neutral location.

    Read from the configured etcd endpoints (/v3/maintenance/status on each, the member
    list from one): the leader is the one named by the answer with the highest raft term.
    `decide` keeps it off the database leader's site (see `decide.MoveEtcdLeader`)."""

    leader: str  # the leader member's name
    leader_id: int
    site: str | None  # the leader's site; None: a neutral member
    members: tuple[EtcdMemberView, ...]

    def member(self, member_id: int) -> EtcdMemberView | None:
        return next((m for m in self.members if m.id == member_id), None)

    @property
    def neutral(self) -> tuple[EtcdMemberView, ...]:
        """Members at no database site (the witness), in name order."""
        return tuple(sorted((m for m in self.members if m.site is None), key=lambda m: m.name))


@dataclass(frozen=True)
class Observation:
    """Everything one round saw; taken_at is when the round started reading."""

    taken_at: float
    probes: Mapping[str, SiteProbe]  # per site name, through its floating IP
    cluster: ClusterState | None  # None: no site's Patroni answered
    dns: DnsRecord | None  # None: the record could not be read
    lease: LeaseState
    # Per site with a floating_ip block whose Neutron answered this round.
    floating_ips: Mapping[str, FloatingIpState] = field(default_factory=dict)
    # The etcd raft leader and members; None: unread or unreadable (never an alarm by
    # itself: the lease reports etcd trouble).
    etcd_leader: EtcdLeaderView | None = None
