"""What one region's network should look like, computed from Neutron's API objects.

Pure functions over the JSON dicts that the Neutron API returns (no neutron, no Docker, no
kernel): the lab network agent (netagent.py) feeds them what it read and renders the result
with lab_iptables.py. Only IPv4 is modelled: the lab's ranges are IPv4 (addresses.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network

Json = Mapping[str, Any]

ROUTER_INTERFACE_OWNERS = frozenset(
    {
        "network:router_interface",
        "network:router_interface_distributed",
        "network:ha_router_replicated_interface",
    }
)
COMPUTE_OWNER_PREFIX = "compute:"

# Protocols whose rules can carry a destination port range (iptables has a match module
# of the same name for each).
PORT_PROTOCOLS = frozenset({"tcp", "udp", "sctp", "dccp"})
# Neutron accepts protocol names or numbers; iptables gets a name where it has a port match
# and a number otherwise (a number needs no /etc/protocols inside the instance's namespace).
_PROTOCOL_NUMBERS = {
    "icmp": 1,
    "igmp": 2,
    "ipip": 4,
    "tcp": 6,
    "egp": 8,
    "udp": 17,
    "dccp": 33,
    "rsvp": 46,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "ospf": 89,
    "encap": 98,
    "pgm": 113,
    "vrrp": 112,
    "sctp": 132,
    "udplite": 136,
}
_NAMED = {"tcp", "udp", "icmp", "sctp", "dccp"}
_NUMBER_TO_NAME = {number: name for name, number in _PROTOCOL_NUMBERS.items() if name in _NAMED}
_ANY = {None, "", "any", "0"}
_IPV6_ONLY = {"icmpv6", "ipv6-icmp", "58", "ipv6-encap", "41", "ipv6-frag", "44"}


class UnsupportedRuleError(ValueError):
    """A security group rule the lab cannot express (it is left out, never widened)."""


@dataclass(frozen=True, order=True)
class FloatingIP:
    """A floating IP associated to a port: traffic to `address` goes to `fixed_ip`."""

    address: IPv4Address
    fixed_ip: IPv4Address
    id: str = field(compare=False)


@dataclass(frozen=True, order=True)
class RouterNat:
    """A subnet behind a router with an external gateway: it leaves as `gateway_ip`."""

    subnet: IPv4Network
    gateway_ip: IPv4Address


@dataclass(frozen=True)
class IngressRule:
    """One allowed ingress flow: protocol (None = any), ports or ICMP type/code, sources.

    `sources` None means from anywhere; an empty tuple never happens (such a rule is
    dropped: a remote group without members allows nothing).
    """

    protocol: str | None
    port_min: int | None = None
    port_max: int | None = None
    sources: tuple[IPv4Network, ...] | None = None


@dataclass(frozen=True, order=True)
class PortFilter:
    """The ingress filter of one instance port (a Neutron port whose device is a server)."""

    port_id: str
    instance_uuid: str
    mac: str
    ips: tuple[IPv4Address, ...]
    enabled: bool  # port_security_enabled: False means no filtering at all
    stateful: bool  # replies to the instance's own connections pass (stateful groups)
    rules: tuple[IngressRule, ...]


@dataclass(frozen=True)
class RegionState:
    """Everything the agent enforces for one region, in a canonical (sorted) form."""

    region: str
    tenant_subnets: tuple[IPv4Network, ...] = ()
    external_subnets: tuple[IPv4Network, ...] = ()
    floating_ips: tuple[FloatingIP, ...] = ()
    router_nat: tuple[RouterNat, ...] = ()
    # ordered pairs (a, b), a != b, of subnets attached to one router: routed without NAT
    router_peers: tuple[tuple[IPv4Network, IPv4Network], ...] = ()
    ports: tuple[PortFilter, ...] = ()

    def ports_of(self, instance_uuid: str) -> list[PortFilter]:
        return [p for p in self.ports if p.instance_uuid == instance_uuid]


def _ipv4(value: Any) -> IPv4Address | None:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    return address if isinstance(address, IPv4Address) else None


def _ipv4_network(value: Any) -> IPv4Network | None:
    try:
        network = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return None
    return network if isinstance(network, IPv4Network) else None


def normalize_protocol(protocol: Any) -> str | None:
    """Neutron's protocol (name, number or None) as an iptables -p argument; None = any."""
    if protocol is None:
        return None
    text = str(protocol).strip().lower()
    if text in _ANY:
        return None
    if text in _IPV6_ONLY:
        raise UnsupportedRuleError(f"protocol {protocol!r} is IPv6-only")
    if text.isdigit():
        number = int(text)
        if not 0 < number < 256:
            raise UnsupportedRuleError(f"protocol number {protocol!r} out of range")
        return _NUMBER_TO_NAME.get(number, str(number))
    if text in _NAMED:
        return text
    if text in _PROTOCOL_NUMBERS:
        return str(_PROTOCOL_NUMBERS[text])
    raise UnsupportedRuleError(f"unknown protocol {protocol!r}")


def _port(value: Any) -> int | None:
    return None if value is None else int(value)


def ingress_rule(
    rule: Json,
    group_members: Mapping[str, Sequence[IPv4Network]],
    address_groups: Mapping[str, Sequence[IPv4Network]],
) -> IngressRule | None:
    """One Neutron security group rule as an IngressRule; None when it does not apply here.

    Egress rules and IPv6 rules are not enforced (None). A rule that cannot be expressed
    raises UnsupportedRuleError, so that the caller can log it: it is left out, which denies.
    """
    if rule.get("direction") != "ingress" or rule.get("ethertype", "IPv4") != "IPv4":
        return None
    protocol = normalize_protocol(rule.get("protocol"))
    port_min, port_max = _port(rule.get("port_range_min")), _port(rule.get("port_range_max"))
    if protocol in PORT_PROTOCOLS:
        if port_min is None:
            port_max = None
        elif port_max is None:
            port_max = port_min
        if port_min is not None and port_max is not None and port_min > port_max:
            raise UnsupportedRuleError(f"port range {port_min}:{port_max} is empty")
        if port_min == 1 and port_max == 65535:
            port_min = port_max = None  # every port: no port match at all
    elif protocol == "icmp":
        if port_min is None:
            port_max = None  # a code without a type means any ICMP
    else:
        port_min = port_max = None  # other protocols have no ports
    sources: tuple[IPv4Network, ...] | None
    if rule.get("remote_group_id"):
        sources = tuple(sorted(set(group_members.get(str(rule["remote_group_id"]), ()))))
        if not sources:
            return None  # a group without (IPv4) members allows nothing
    elif rule.get("remote_address_group_id"):
        sources = tuple(sorted(set(address_groups.get(str(rule["remote_address_group_id"]), ()))))
        if not sources:
            return None
    elif rule.get("remote_ip_prefix"):
        prefix = _ipv4_network(rule["remote_ip_prefix"])
        if prefix is None:
            return None  # an IPv6 prefix on an IPv4 rule cannot match anything
        sources = None if prefix.prefixlen == 0 else (prefix,)
    else:
        sources = None
    return IngressRule(protocol, port_min, port_max, sources)


def _port_ipv4s(port: Json) -> list[IPv4Address]:
    found = (_ipv4(ip.get("ip_address")) for ip in port.get("fixed_ips") or ())
    return [ip for ip in found if ip is not None]


def _members(ports: Iterable[Json]) -> dict[str, list[IPv4Network]]:
    """Security group id -> the IPv4 addresses of its member ports (and their address pairs)."""
    members: dict[str, list[IPv4Network]] = {}
    for port in ports:
        addresses = [IPv4Network(ip) for ip in _port_ipv4s(port)]
        for pair in port.get("allowed_address_pairs") or ():
            network = _ipv4_network(pair.get("ip_address"))
            if network is not None:
                addresses.append(network)
        for group in port.get("security_groups") or ():
            members.setdefault(str(group), []).extend(addresses)
    return members


def build_region_state(
    region: str,
    *,
    ports: Sequence[Json],
    floating_ips: Sequence[Json],
    security_groups: Sequence[Json],
    routers: Sequence[Json],
    subnets: Sequence[Json],
    address_groups: Sequence[Json] = (),
    external_network_ids: Iterable[str] = (),
    problems: list[str] | None = None,
) -> RegionState:
    """The desired network state of a region from what its Neutron API lists.

    External networks are those listed in `external_network_ids` (router:external) and
    any that a floating IP or a router gateway uses. `problems` (if given) collects
    human-readable notes about what was left out.
    """
    notes = problems if problems is not None else []
    subnet_cidr: dict[str, IPv4Network] = {}
    subnet_network: dict[str, str] = {}
    for subnet in subnets:
        cidr = _ipv4_network(subnet.get("cidr"))
        if cidr is not None and subnet.get("ip_version", 4) == 4:
            subnet_cidr[str(subnet["id"])] = cidr
            subnet_network[str(subnet["id"])] = str(subnet.get("network_id"))

    external_networks = {str(n) for n in external_network_ids}
    external_networks.update(str(f["floating_network_id"]) for f in floating_ips)
    for router in routers:
        gateway = router.get("external_gateway_info") or {}
        if gateway.get("network_id"):
            external_networks.add(str(gateway["network_id"]))
    external = {
        cidr for sid, cidr in subnet_cidr.items() if subnet_network[sid] in external_networks
    }
    tenant = set(subnet_cidr.values()) - external

    fips = []
    for fip in floating_ips:
        address, fixed = _ipv4(fip.get("floating_ip_address")), _ipv4(fip.get("fixed_ip_address"))
        if fip.get("port_id") and address is not None and fixed is not None:
            fips.append(FloatingIP(address, fixed, str(fip["id"])))
    # One floating IP address maps to one target (Neutron guarantees it; keep it so).
    by_address: dict[IPv4Address, FloatingIP] = {}
    for fip_obj in sorted(fips):
        by_address.setdefault(fip_obj.address, fip_obj)

    router_subnets: dict[str, set[IPv4Network]] = {}
    for port in ports:
        if port.get("device_owner") in ROUTER_INTERFACE_OWNERS:
            for ip in port.get("fixed_ips") or ():
                cidr = subnet_cidr.get(str(ip.get("subnet_id")))
                if cidr is not None and cidr in tenant:
                    router_subnets.setdefault(str(port.get("device_id")), set()).add(cidr)
    nat: dict[IPv4Network, IPv4Address] = {}
    peers: set[tuple[IPv4Network, IPv4Network]] = set()
    for router in sorted(routers, key=lambda r: str(r.get("id"))):
        attached = router_subnets.get(str(router.get("id")), set())
        peers.update((a, b) for a in attached for b in attached if a != b)
        gateway = router.get("external_gateway_info") or {}
        gateway_ips = [
            _ipv4(ip.get("ip_address")) for ip in gateway.get("external_fixed_ips") or ()
        ]
        gateway_ip = next((ip for ip in gateway_ips if ip is not None), None)
        if gateway_ip is not None:
            for cidr in attached:
                nat.setdefault(cidr, gateway_ip)

    groups = {str(g["id"]): g for g in security_groups}
    instance_ports = [
        p for p in ports if str(p.get("device_owner") or "").startswith(COMPUTE_OWNER_PREFIX)
    ]
    members = _members(p for p in ports if p.get("security_groups"))
    address_sets: dict[str, list[IPv4Network]] = {}
    for group in address_groups:
        found = (_ipv4_network(a) for a in group.get("addresses") or ())
        address_sets[str(group["id"])] = [a for a in found if a is not None]

    filters = []
    for port in instance_ports:
        ips = tuple(sorted(_port_ipv4s(port)))
        enabled = port.get("port_security_enabled", True) is not False
        rules: set[IngressRule] = set()
        stateful = True
        for group_id in port.get("security_groups") or ():
            sg = groups.get(str(group_id))
            if sg is None:
                notes.append(f"port {port['id']}: security group {group_id} not listed")
                continue
            if sg.get("stateful") is False:
                stateful = False
            for rule in sg.get("security_group_rules") or ():
                try:
                    found_rule = ingress_rule(rule, members, address_sets)
                except (UnsupportedRuleError, ValueError, TypeError) as exc:
                    notes.append(f"rule {rule.get('id')} of group {group_id} left out: {exc}")
                    continue
                if found_rule is not None:
                    rules.add(found_rule)
        filters.append(
            PortFilter(
                port_id=str(port["id"]),
                instance_uuid=str(port.get("device_id") or ""),
                mac=str(port.get("mac_address") or "").lower(),
                ips=ips,
                enabled=enabled,
                stateful=stateful,
                rules=tuple(sorted(rules, key=_rule_key)),
            )
        )

    return RegionState(
        region=region,
        tenant_subnets=tuple(sorted(tenant)),
        external_subnets=tuple(sorted(external)),
        floating_ips=tuple(sorted(by_address.values())),
        router_nat=tuple(sorted(RouterNat(s, g) for s, g in nat.items())),
        router_peers=tuple(sorted(peers)),
        ports=tuple(sorted(filters)),
    )


def _rule_key(rule: IngressRule) -> tuple[str, int, int, tuple[str, ...]]:
    return (
        rule.protocol or "",
        -1 if rule.port_min is None else rule.port_min,
        -1 if rule.port_max is None else rule.port_max,
        tuple(str(s) for s in rule.sources or ()),
    )


def docker_network_subnets(network: Mapping[str, Any]) -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets of a Docker network, from its `docker network inspect` data."""
    found = []
    for config in (network.get("IPAM") or {}).get("Config") or ():
        try:
            subnet = ipaddress.ip_network(str(config.get("Subnet")), strict=False)
        except ValueError:
            continue
        if isinstance(subnet, ipaddress.IPv4Network):
            found.append(subnet)
    return found
