"""nmpi-failover's OpenStack actuators against the local OpenStack (real Neutron, Designate).

- Neutron: a site with two web VMs; the adapter reads which VM the site's floating IP is on,
  moves it to the standby VM (compare-and-swap on the revision) and the traffic follows.
- Designate: the adapter reads the public name, moves it by compare-and-swap, refuses to
  overwrite a value it did not expect, and the lab's DNS server answers the new address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from nmpi_failover.adapters.designate import DesignateDns
from nmpi_failover.adapters.neutron_fip import NeutronFloatingIps
from nmpi_failover.adapters.probe import HttpsProber
from nmpi_failover.config import Config, parse_config
from nmpi_failover.decide import MoveFloatingIp
from nmpi_failover.ports import DnsConflictError

from tests.devstack.labcloud import (
    DNS_SERVER,
    Site,
    build_site,
    connect,
    purge,
    ssh,
    wait_until,
)

# In the pytest process that runs every suite of the local OpenStack (scripts/run-tests).
pytestmark = [pytest.mark.slow, pytest.mark.lab]

PREFIX = "nmpifo"
WEB_1, WEB_2 = f"{PREFIX}-web-1", f"{PREFIX}-web-2"
ZONE = f"{PREFIX}.example."
RECORD = f"nmpi.{ZONE}"


@pytest.fixture(scope="module")
def castor(openstack_lab: Path, ssh_key: Path) -> Iterator[Site]:
    site = Site("castor", PREFIX, connect(openstack_lab, "lab-castor"), "10.81.248.0/24")
    try:
        yield build_site(site, ssh_key, ["web-1", "web-2"], with_fip=["web-1"])
    finally:
        purge(site)


def failover_config(site: Site, designate_cloud: str) -> Config:
    """An nmpi-failover config whose castor site has the two web VMs and the floating IP."""
    address = site.floating_ips["web-1"].floating_ip_address
    return parse_config(
        {
            "preferred_site": "castor",
            "sites": [
                {
                    "name": "castor",
                    "probe_url": f"https://{address}/readyz",
                    "address": address,
                    "patroni_urls": ["http://127.0.0.1:8008"],
                    "db_members": ["castor-db-1"],
                    "floating_ip": {
                        "cloud": "lab-castor",
                        "web_vms": [
                            {"name": vm.name, "probe_url": f"https://{site.fixed_ip(vm)}/readyz"}
                            for vm in site.servers.values()
                        ],
                    },
                },
                {
                    "name": "jusuf",
                    "probe_url": "https://198.18.82.10/readyz",
                    "address": "198.18.82.10",
                    "patroni_urls": ["http://127.0.0.1:8009"],
                    "db_members": ["jusuf-db-1"],
                },
            ],
            "dns": {"record": RECORD, "designate": {"cloud": designate_cloud, "zone": ZONE}},
            "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
        }
    )


def test_neutron_actuator_moves_the_floating_ip_with_its_traffic(
    castor: Site, openstack_lab: Path, ssh_key: Path
) -> None:
    config = failover_config(castor, "lab-admin")
    site = config.site("castor")
    adapter = NeutronFloatingIps(
        config, HttpsProber(timeout=1.0), connection_factory=partial(connect, openstack_lab)
    )
    state = asyncio.run(adapter.read(site))
    assert state is not None, "the adapter could not read castor's Neutron"
    assert state.attached_vm == WEB_1
    address = site.address
    asyncio.run(
        adapter.move(
            MoveFloatingIp(
                site="castor", address=address, from_vm=WEB_1, to_vm=WEB_2, reason="test"
            )
        )
    )
    moved = asyncio.run(adapter.read(site))
    assert moved is not None
    assert moved.attached_vm == WEB_2
    assert wait_until(
        "traffic to the floating IP to reach web-2",
        lambda: ssh(ssh_key, address, "hostname").strip() == WEB_2,
        30,
    )


@pytest.fixture
def zone(openstack_lab: Path) -> Iterator[Any]:
    conn = connect(openstack_lab, "lab-admin")
    for old in conn.dns.zones(name=ZONE):
        conn.dns.delete_zone(old)
        wait_until("the old zone to go", lambda: not list(conn.dns.zones(name=ZONE)), 60)
    created = conn.dns.create_zone(name=ZONE, email="ops@example.org", ttl=60)
    wait_until("the zone to become ACTIVE", lambda: conn.dns.get_zone(created).status == "ACTIVE")
    try:
        yield created
    finally:
        conn.dns.delete_zone(created)


def resolve(name: str) -> str | None:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [DNS_SERVER]
    resolver.lifetime = 3
    try:
        return str(resolver.resolve(name, "A")[0])
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return None


def test_designate_actuator_compare_and_swap(castor: Site, openstack_lab: Path, zone: Any) -> None:
    config = failover_config(castor, "lab-admin")
    adapter = DesignateDns(config, timeout=10, connection_factory=partial(connect, openstack_lab))
    castor_ip, jusuf_ip = "198.18.81.10", "198.18.82.10"

    record = asyncio.run(adapter.read())
    assert record is not None
    assert record.addresses == frozenset()
    asyncio.run(adapter.point(castor_ip, frozenset()))
    assert wait_until("castor's address on the lab DNS", lambda: resolve(RECORD) == castor_ip, 90)

    # A writer that saw another value must not overwrite what is there.
    with pytest.raises(DnsConflictError):
        asyncio.run(adapter.point(jusuf_ip, frozenset({"198.18.81.99"})))
    asyncio.run(adapter.point(jusuf_ip, frozenset({castor_ip})))
    record = asyncio.run(adapter.read())
    assert record is not None
    assert record.addresses == frozenset({jusuf_ip})
    assert wait_until("jusuf's address on the lab DNS", lambda: resolve(RECORD) == jusuf_ip, 90)
