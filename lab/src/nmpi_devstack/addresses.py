"""The lab's address plan: the one place where every address the local OpenStack uses is chosen.

Nothing in the lab sends traffic outside these ranges and loopback (the instances' own
package downloads leave through Docker's NAT like any container's).

Every region a lab can run is here (REGIONS), with the same addresses whether it runs or
not. A lab runs the two sites, castor and jusuf, unless told otherwise; the witness (the
design's third location) runs when asked: `nmpi-devstack up --regions castor,jusuf,witness`
(regions.py chooses and remembers the set).

- API endpoints bind loopback only: the shared services (Keystone, Glance, Designate) and
  region castor on 127.0.0.1, region jusuf on 127.0.0.2, region witness on 127.0.0.3, on
  the standard ports.
- 198.18.0.0/15 (RFC 2544, "benchmarking": never routed on the Internet) holds the lab's
  own networks:
    198.18.0.0/24   lab services bridge; the host is 198.18.0.1 and serves DNS there (the
                    BIND9 server Designate writes to), reachable from the host and instances
    198.18.81.0/24  region castor's external network (floating IPs)
    198.18.82.0/24  region jusuf's external network (floating IPs)
    198.18.83.0/24  region witness's external network (floating IPs)
- Tenant networks are the users' choice inside the region's range (10.81.0.0/16 for
  castor, 10.82.0.0/16 for jusuf, 10.83.0.0/16 for witness): each Neutron subnet becomes a
  Docker bridge with the same CIDR on this one host, so subnets may not overlap across the lab.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# Every range the lab owns; traffic between these is the lab's own.
LAB_SUPERNET = ipaddress.IPv4Network("198.18.0.0/15")

SERVICES_NETWORK = ipaddress.IPv4Network("198.18.0.0/24")
SERVICES_GATEWAY = ipaddress.IPv4Address("198.18.0.1")
# The authoritative DNS server Designate's pool writes to (BIND9 on the host).
DNS_ADDRESS = SERVICES_GATEWAY
DNS_PORT = 53
# The same BIND9 on loopback: designate-worker's NOTIFY and serial polls, and rndc (control).
DNS_LOOPBACK_PORT = 5301
RNDC_PORT = 9953
# Name of the NS record of every zone Designate creates (out of zone: needs no glue).
DNS_NS_NAME = "ns1.lab.example."

SHARED_API_HOST = "127.0.0.1"

# MariaDB and RabbitMQ instances the lab starts for itself: off the standard ports so a
# server the machine already runs is left alone.
MARIADB_PORT = 13306
RABBITMQ_PORT = 15673
# RabbitMQ's Erlang port mapper and distribution port (rabbitmqctl), loopback only.
EPMD_PORT = 14369
RABBITMQ_DIST_PORT = 35673

PORTS = {
    "keystone": 5000,
    "glance": 9292,
    "designate": 9001,
    "placement": 8778,
    "nova": 8774,
    "neutron": 9696,
    "cinder": 8776,
    # designate-mdns: answers NOTIFY/AXFR for the DNS server (loopback only)
    "designate-mdns": 5354,
}


@dataclass(frozen=True)
class Region:
    """One OpenStack region of the lab (a "site")."""

    name: str
    api_host: str  # loopback address its Nova/Neutron/Cinder/Placement APIs bind
    external_cidr: ipaddress.IPv4Network  # its external network: floating IPs
    tenant_range: ipaddress.IPv4Network  # where its users' subnets are expected

    @property
    def external_gateway(self) -> ipaddress.IPv4Address:
        return self.external_cidr.network_address + 1

    @property
    def floating_ip_pool(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        return (self.external_cidr.network_address + 10, self.external_cidr.network_address + 250)

    @property
    def external_network_name(self) -> str:
        return "public"

    @property
    def docker_external_network(self) -> str:
        return f"nmpilab-{self.name}-ext"


# Every region of the plan, in the plan's order: a lab's regions keep this order, and the
# first of them is its primary region (see regions.py).
REGIONS: dict[str, Region] = {
    "castor": Region(
        name="castor",
        api_host="127.0.0.1",
        external_cidr=ipaddress.IPv4Network("198.18.81.0/24"),
        tenant_range=ipaddress.IPv4Network("10.81.0.0/16"),
    ),
    "jusuf": Region(
        name="jusuf",
        api_host="127.0.0.2",
        external_cidr=ipaddress.IPv4Network("198.18.82.0/24"),
        tenant_range=ipaddress.IPv4Network("10.82.0.0/16"),
    ),
    # The third location: an etcd member, the DNS server and nmpi-failover live there, so it
    # must outlive either site (`nmpi-devstack cut castor` leaves it alone).
    "witness": Region(
        name="witness",
        api_host="127.0.0.3",
        external_cidr=ipaddress.IPv4Network("198.18.83.0/24"),
        tenant_range=ipaddress.IPv4Network("10.83.0.0/16"),
    ),
}

SERVICES_DOCKER_NETWORK = "nmpilab-services"
