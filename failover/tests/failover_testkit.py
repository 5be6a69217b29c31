"""Builders shared by the nmpi-failover tests: a config, cluster states and observations."""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from nmpi_failover.config import Config, parse_config
from nmpi_failover.model import (
    ClusterState,
    DnsRecord,
    EtcdLeaderView,
    EtcdMemberView,
    FloatingIpState,
    LeaseState,
    LeaseStatus,
    Member,
    MemberRole,
    Observation,
    SiteProbe,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "failover" / "examples" / "lab.yaml"
CASTOR_IP, JUSUF_IP = "192.0.2.10", "198.51.100.10"
ADDRESS = {"castor": CASTOR_IP, "jusuf": JUSUF_IP}
MEMBER = {"castor": "castor-db-1", "jusuf": "jusuf-db-1"}
INTERVAL = 2.0

# A config that needs no files (Designate, no CA files), for the decision tests.
BASE: dict[str, Any] = {
    "preferred_site": "castor",
    "interval": INTERVAL,
    "probe_timeout": 1.0,
    "failures_to_down": 3,
    "max_replica_lag_bytes": 1000,
    "switchover_timeout": 30,
    "sites": [
        {
            "name": "castor",
            "probe_url": f"https://{CASTOR_IP}/readyz",
            "address": CASTOR_IP,
            "patroni_urls": ["http://10.10.0.11:8008"],
            "db_members": ["castor-db-1"],
            "floating_ip": {
                "cloud": "castor",
                "web_vms": [
                    {"name": "castor-web-1", "probe_url": "https://10.10.0.21/readyz"},
                    {"name": "castor-web-2", "probe_url": "https://10.10.0.22/readyz"},
                ],
            },
        },
        {
            "name": "jusuf",
            "probe_url": f"https://{JUSUF_IP}/readyz",
            "address": JUSUF_IP,
            "patroni_urls": ["http://10.20.0.11:8008"],
            "db_members": ["jusuf-db-1"],
        },
    ],
    "dns": {
        "record": "nmpi.lab.example.",
        "designate": {"cloud": "witness", "zone": "lab.example."},
    },
    "etcd": {"endpoints": ["http://10.30.0.11:2379"], "lease_ttl": 10},
}


def make_config(**overrides: Any) -> Config:
    data = copy.deepcopy(BASE)
    data.update(overrides)
    return parse_config(data)


def lab_files(directory: Path) -> None:
    """The files examples/lab.yaml refers to, as the lab bootstrap would write them."""
    secret = directory / "tsig.key"
    secret.write_text(base64.b64encode(b"lab-only-tsig-secret-for-tests!!").decode() + "\n")
    secret.chmod(0o600)
    (directory / "lab-ca.pem").write_text("lab CA placeholder for the loader tests\n")


def example_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


@dataclass(frozen=True)
class Replica:
    """How the non-leader member looks."""

    role: MemberRole = MemberRole.SYNC_STANDBY
    state: str = "streaming"
    lag: int | None = 0
    timeline: int = 7


IN_SYNC = Replica()
LAGGING = Replica(role=MemberRole.REPLICA, lag=10_000_000)


def cluster(leader_site: str | None, replica: Replica = IN_SYNC) -> ClusterState:
    members = []
    for site in ("castor", "jusuf"):
        if site == leader_site:
            members.append(Member(MEMBER[site], site, MemberRole.LEADER, "running", 0, 7))
        else:
            r = replica
            members.append(Member(MEMBER[site], site, r.role, r.state, r.lag, r.timeline))
    return ClusterState(tuple(members))


def probe(ok: bool, status: int | None = None) -> SiteProbe:
    """ok: HTTP 200. Failed: `status` when the web tier answered (e.g. 503), else a timeout."""
    if ok:
        return SiteProbe(ok=True, latency=0.05, status_code=200)
    if status is not None:
        return SiteProbe(ok=False, latency=0.05, error=f"HTTP {status}", status_code=status)
    return SiteProbe(ok=False, error="timeout")


def held(now: float) -> LeaseState:
    return LeaseState(LeaseStatus.HELD, holder="witness-1", valid_until=now + 10)


def observation(
    taken_at: float,
    *,
    castor: bool = True,
    jusuf: bool = True,
    castor_status: int | None = None,
    jusuf_status: int | None = None,
    leader: str | None = "castor",
    replica: Replica = IN_SYNC,
    dns: str | None = "castor",
    lease: LeaseState | None = None,
    cluster_state: ClusterState | None = None,
    no_cluster: bool = False,
    floating_ips: Mapping[str, FloatingIpState] | None = None,
    etcd_leader: EtcdLeaderView | None = None,
) -> Observation:
    """One round's view; `dns` names the site the record points at (None: unreadable).
    A failed probe answered with `<site>_status` (e.g. 503), else it timed out."""
    return Observation(
        taken_at=taken_at,
        probes={"castor": probe(castor, castor_status), "jusuf": probe(jusuf, jusuf_status)},
        cluster=None if no_cluster else (cluster_state or cluster(leader, replica)),
        dns=None if dns is None else DnsRecord("nmpi.lab.example.", frozenset({ADDRESS[dns]})),
        lease=lease if lease is not None else held(taken_at),
        floating_ips=floating_ips or {},
        etcd_leader=etcd_leader,
    )


# The etcd members as deployed: named like their hosts, so the db VMs' members map to sites
# by db_members and the witness's is neutral.
ETCD_IDS = {"castor-db-1": 0xC1, "jusuf-db-1": 0x71, "witness-1": 0x31}
ETCD_SITES = {"castor-db-1": "castor", "jusuf-db-1": "jusuf", "witness-1": None}


def etcd_view(
    leader: str = "castor-db-1",
    *,
    silent: tuple[str, ...] = (),
    members: tuple[str, ...] = tuple(ETCD_IDS),
) -> EtcdLeaderView:
    """The etcd leader `leader`; the members in `silent` did not answer their status."""
    return EtcdLeaderView(
        leader=leader,
        leader_id=ETCD_IDS[leader],
        site=ETCD_SITES[leader],
        members=tuple(
            EtcdMemberView(name, ETCD_IDS[name], ETCD_SITES[name], name not in silent)
            for name in members
        ),
    )
