"""The interfaces the network adapters implement, so the daemon and tests can swap them.

Reads never raise for an unreachable peer: they return what they could see (a failed
SiteProbe, None for the cluster or the record), because "cannot see it" is an observation
the decision handles. Actions raise ActuatorError, which the daemon counts per actuator.
All are async so one round can read every site concurrently within its interval.
"""

from __future__ import annotations

from typing import Protocol

from .config import SiteConfig
from .decide import MoveEtcdLeader, MoveFloatingIp, Switchover
from .model import (
    ClusterState,
    DnsRecord,
    EtcdLeaderView,
    FloatingIpState,
    LeaseState,
    SiteProbe,
)


class ActuatorError(Exception):
    """An action failed; `actuator` is the metric label (dns, patroni, neutron, etcd)."""

    def __init__(self, actuator: str, message: str) -> None:
        self.actuator = actuator
        super().__init__(message)


class PatroniRefusedError(ActuatorError):
    """Patroni answered a request to move the leader with a refusal (e.g. HTTP 412): it did
    nothing, so asking again later is safe."""

    def __init__(self, path: str, status: int, text: str) -> None:
        self.path, self.status, self.text = path, status, text
        super().__init__("patroni", f"Patroni refused {path} (HTTP {status}): {text}")

    @property
    def not_sync_standby(self) -> bool:
        """Refused because, as the member that answered sees its /sync key, the candidate is
        not the synchronous standby (patroni/api.py is_failover_possible). Members' copies of
        the DCS differ for a moment after the leader names a new one: worth a retry."""
        return self.status == 412 and "does not match with sync_standby" in self.text


class DnsConflictError(ActuatorError):
    """The record no longer held the expected value: someone else changed it; re-observe."""

    def __init__(self, message: str) -> None:
        super().__init__("dns", message)


class Clock(Protocol):
    def monotonic(self) -> float: ...  # for ages, timeouts, lease expiry
    def time(self) -> float: ...  # Unix time, for the journal and metrics


class SiteProber(Protocol):
    async def probe(self, site: SiteConfig, url: str | None = None) -> SiteProbe:
        """GET the site's probe_url (or `url`, a web VM's) with its server_name and CA."""
        ...


class ClusterReader(Protocol):
    async def read_cluster(self) -> ClusterState | None:
        """Patroni /cluster from the first site that answers; members mapped to sites."""
        ...


class DnsProvider(Protocol):
    async def read(self) -> DnsRecord | None: ...

    async def point(self, address: str, expected_current: frozenset[str]) -> None:
        """Replace the record's addresses with `address` only if they equal
        `expected_current` (RFC 2136 prerequisite or Designate read-compare-write);
        raise DnsConflictError when they do not."""
        ...


class PatroniActuator(Protocol):
    async def switchover(self, action: Switchover) -> None:
        """Ask Patroni (through the target site's REST API) to move the leader."""
        ...


class Lease(Protocol):
    async def refresh(self) -> LeaseState:
        """Acquire or keep the acting lease; report ETCD_UNREACHABLE rather than raise."""
        ...

    async def peek(self) -> LeaseState:
        """Who holds the lease, without taking it (for `status` and the CLI commands)."""
        ...

    async def release(self) -> None: ...


class FloatingIps(Protocol):
    async def read(self, site: SiteConfig) -> FloatingIpState | None:
        """The FIP's attached VM (site's Neutron) and a direct probe of each web VM."""
        ...

    async def move(self, action: MoveFloatingIp) -> None: ...


class EtcdLeadership(Protocol):
    async def read(self) -> EtcdLeaderView | None:
        """The etcd raft leader and members, names mapped to sites; None if unreadable."""
        ...

    async def move(self, action: MoveEtcdLeader) -> None:
        """etcd's leadership transfer, sent to the current leader; ActuatorError("etcd")."""
        ...
