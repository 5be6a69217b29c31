"""Designate and Neutron adapters without a cloud: their pure choices, and their calls
against an in-memory stand-in for openstacksdk's proxies (the same method names and
arguments). They run against the local OpenStack in
tests/devstack/test_failover_on_openstack.py."""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from failover_testkit import CASTOR_IP, make_config
from nmpi_failover.adapters.designate import DesignateDns, addresses_of
from nmpi_failover.adapters.neutron_fip import NeutronFloatingIps, attached_vm, choose_port
from nmpi_failover.config import SiteConfig
from nmpi_failover.decide import MoveFloatingIp
from nmpi_failover.model import DnsRecord, FloatingIpState, SiteProbe
from nmpi_failover.ports import ActuatorError, DnsConflictError

CONFIG = make_config()  # designate on cloud "witness"; castor has a floating_ip block
RECORD = CONFIG.dns.record
IDS = itertools.count(1)
CASTOR_WEB_VMS = ("castor-web-1", "castor-web-2")


@dataclass
class Recordset:
    name: str
    type: str
    records: list[str]
    ttl: int | None = 30
    id: str = field(default_factory=lambda: f"rs-{next(IDS)}")


class FakeDns:
    """openstack.dns.v2._proxy.Proxy, the calls DesignateDns makes."""

    def __init__(self, *recordsets: Recordset) -> None:
        self.sets = {rs.id: rs for rs in recordsets}
        self.calls: list[str] = []
        self.fail: Exception | None = None

    def find_zone(self, name: str, ignore_missing: bool = True) -> Any:
        if self.fail:
            raise self.fail
        return {"name": name, "id": "zone-1"}

    def recordsets(self, zone: Any, **query: Any) -> list[Recordset]:
        return [
            rs
            for rs in self.sets.values()
            if rs.name == query.get("name") and rs.type == query.get("type")
        ]

    def update_recordset(self, recordset: Recordset, **attrs: Any) -> Recordset:
        self.calls.append(f"update {recordset.type} {attrs}")
        recordset.records, recordset.ttl = attrs["records"], attrs["ttl"]
        return recordset

    def delete_recordset(self, recordset: Recordset, zone: Any = None) -> None:
        self.calls.append(f"delete {recordset.type}")
        del self.sets[recordset.id]

    def create_recordset(self, zone: Any, **attrs: Any) -> Recordset:
        self.calls.append(f"create {attrs['type']} {attrs['records']}")
        rs = Recordset(attrs["name"], attrs["type"], attrs["records"], attrs["ttl"])
        self.sets[rs.id] = rs
        return rs


@dataclass
class FakeConnection:
    dns: Any = None
    network: Any = None
    compute: Any = None


def designate(fake: FakeDns) -> tuple[DesignateDns, list[str]]:
    clouds: list[str] = []

    def factory(cloud: str) -> FakeConnection:
        clouds.append(cloud)
        return FakeConnection(dns=fake)

    return DesignateDns(CONFIG, connection_factory=factory), clouds


def test_addresses_of_a_name_are_its_a_and_aaaa_records() -> None:
    sets = [
        Recordset(RECORD, "A", ["192.0.2.10"]),
        Recordset(RECORD, "AAAA", ["2001:db8::1"]),
        Recordset(RECORD, "TXT", ["hello"]),
    ]
    assert addresses_of(sets) == frozenset({"192.0.2.10", "2001:db8::1"})


def test_designate_reads_through_the_witness_cloud() -> None:
    adapter, clouds = designate(FakeDns(Recordset(RECORD, "A", [CASTOR_IP], ttl=30)))
    assert asyncio.run(adapter.read()) == DnsRecord(RECORD, frozenset({CASTOR_IP}), 30)
    assert clouds == ["witness"]


def test_designate_compare_and_swap_writes_only_over_what_was_seen() -> None:
    fake = FakeDns(Recordset(RECORD, "A", [CASTOR_IP]))
    adapter, _ = designate(fake)
    asyncio.run(adapter.point("198.51.100.10", frozenset({CASTOR_IP})))
    assert fake.calls == ["update A {'records': ['198.51.100.10'], 'ttl': 30}"]

    with pytest.raises(DnsConflictError, match=re.escape("holds ['198.51.100.10'], not")):
        asyncio.run(adapter.point("203.0.113.1", frozenset({CASTOR_IP})))
    assert len(fake.calls) == 1  # nothing written


def test_designate_creates_the_record_and_changes_family() -> None:
    fake = FakeDns()
    adapter, _ = designate(fake)
    asyncio.run(adapter.point(CASTOR_IP, frozenset()))
    asyncio.run(adapter.point("2001:db8::10", frozenset({CASTOR_IP})))
    assert fake.calls == ["create A ['192.0.2.10']", "delete A", "create AAAA ['2001:db8::10']"]
    assert asyncio.run(adapter.read()) == DnsRecord(RECORD, frozenset({"2001:db8::10"}), 30)


def test_designate_errors_are_unseen_reads_and_failed_actions() -> None:
    fake = FakeDns()
    fake.fail = RuntimeError("keystone says no")
    adapter, _ = designate(fake)
    assert asyncio.run(adapter.read()) is None
    with pytest.raises(ActuatorError, match="keystone says no") as raised:
        asyncio.run(adapter.point(CASTOR_IP, frozenset()))
    assert raised.value.actuator == "dns"


# --- Neutron ---------------------------------------------------------------------------------


@dataclass
class Port:
    id: str
    device_id: str
    network_id: str | None = "net-web"
    status: str | None = "ACTIVE"
    fixed_ips: list[dict[str, Any]] | None = field(
        default_factory=lambda: [{"ip_address": "10.10.0.21"}]
    )


def test_attached_vm_maps_the_device_to_a_configured_name() -> None:
    servers = {"castor-web-1": "srv-1", "castor-web-2": "srv-2"}
    assert attached_vm("srv-2", servers) == "castor-web-2"
    assert attached_vm(None, servers) is None
    assert attached_vm("srv-9", servers) == "device srv-9"


def test_choose_port_prefers_the_current_network_then_active_ipv4() -> None:
    v6_only = Port("p-v6", "srv", fixed_ips=[{"ip_address": "2001:db8::5"}])
    other_net = Port("p-other", "srv", network_id="net-db")
    down = Port("p-down", "srv", status="DOWN")
    active = Port("p-active", "srv")
    assert choose_port([v6_only, other_net, down, active], "net-web").id == "p-active"
    assert choose_port([other_net, down], "net-web").id == "p-down"
    assert choose_port([other_net], "net-web").id == "p-other"
    with pytest.raises(ActuatorError, match="no port with an IPv4"):
        choose_port([v6_only], "net-web")


@dataclass
class FloatingIp:
    floating_ip_address: str
    port_id: str | None
    revision_number: int = 4


@dataclass
class Server:
    id: str
    name: str


class FakeNeutron:
    def __init__(self) -> None:
        self.fip = FloatingIp(CASTOR_IP, "port-1")
        self.port_list = {"port-1": Port("port-1", "srv-1"), "port-2": Port("port-2", "srv-2")}
        self.updates: list[dict[str, Any]] = []

    def ips(self, **query: Any) -> list[FloatingIp]:
        return [self.fip] if query["floating_ip_address"] == self.fip.floating_ip_address else []

    def get_port(self, port_id: str) -> Port:
        return self.port_list[port_id]

    def ports(self, **query: Any) -> list[Port]:
        return [p for p in self.port_list.values() if p.device_id == query["device_id"]]

    def update_ip(self, fip: FloatingIp, if_revision: int | None = None, **attrs: Any) -> None:
        self.updates.append({"if_revision": if_revision, **attrs})
        fip.port_id = attrs["port_id"]


class FakeCompute:
    def __init__(self) -> None:
        self.servers = {name: Server(f"srv-{name[-1]}", name) for name in CASTOR_WEB_VMS}

    def find_server(self, name: str, ignore_missing: bool = True) -> Server | None:
        return self.servers.get(name)


class OkProber:
    async def probe(self, site: SiteConfig, url: str | None = None) -> SiteProbe:
        ok = url is not None and "10.10.0.22" in url
        return SiteProbe(ok=ok, error=None if ok else "timeout")


def test_neutron_reads_the_association_and_moves_with_if_match() -> None:
    network = FakeNeutron()
    fips = NeutronFloatingIps(
        CONFIG,
        OkProber(),
        connection_factory=lambda cloud: FakeConnection(network=network, compute=FakeCompute()),
    )
    state = asyncio.run(fips.read(CONFIG.site("castor")))
    assert state == FloatingIpState(
        attached_vm="castor-web-1",
        vm_probes={
            "castor-web-1": SiteProbe(ok=False, error="timeout"),
            "castor-web-2": SiteProbe(ok=True),
        },
    )
    assert asyncio.run(fips.read(CONFIG.site("jusuf"))) is None  # no floating_ip block

    move = MoveFloatingIp("castor", CASTOR_IP, "castor-web-1", "castor-web-2", "test")
    asyncio.run(fips.move(move))
    assert network.updates == [{"if_revision": 4, "port_id": "port-2"}]


def test_neutron_failures_are_actuator_errors() -> None:
    def broken(cloud: str) -> FakeConnection:
        raise RuntimeError(f"cannot reach {cloud}")

    fips = NeutronFloatingIps(CONFIG, OkProber(), connection_factory=broken)
    assert asyncio.run(fips.read(CONFIG.site("castor"))) is None
    move = MoveFloatingIp("castor", CASTOR_IP, "castor-web-1", "castor-web-2", "test")
    with pytest.raises(ActuatorError, match="cannot reach castor") as raised:
        asyncio.run(fips.move(move))
    assert raised.value.actuator == "neutron"
