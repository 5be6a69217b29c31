"""The lab network's rule rendering and reconciliation, without a kernel (pure, fast).

The agent's round runs against a simulated iptables (SimKernel below: it applies
iptables-restore --noflush input and prints iptables-save output) so that "apply only when
changed", jump placement and conntrack flushing are checked without root or Docker.
"""

from __future__ import annotations

import io
import ipaddress
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from nmpi_devstack import chaos
from nmpi_lab_openstack import lab_iptables as li
from nmpi_lab_openstack import netagent
from nmpi_lab_openstack.lab_state import (
    FloatingIP,
    IngressRule,
    PortFilter,
    RegionState,
    RouterNat,
    UnsupportedRuleError,
    build_region_state,
    ingress_rule,
    normalize_protocol,
)

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address

# --- lab_state ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        (None, None),
        ("any", None),
        ("0", None),
        ("tcp", "tcp"),
        ("TCP", "tcp"),
        ("6", "tcp"),
        ("17", "udp"),
        ("1", "icmp"),
        ("132", "sctp"),
        ("gre", "47"),
        ("vrrp", "112"),
        ("112", "112"),
    ],
)
def test_protocols_become_iptables_arguments(protocol: str | None, expected: str | None) -> None:
    assert normalize_protocol(protocol) == expected


@pytest.mark.parametrize("protocol", ["icmpv6", "ipv6-icmp", "58", "300", "bogus"])
def test_protocols_the_lab_cannot_express_are_refused(protocol: str) -> None:
    with pytest.raises(UnsupportedRuleError):
        normalize_protocol(protocol)


LAB = N("198.18.0.0/15")
MEMBERS = {"g1": [N("10.81.1.5/32"), N("10.81.1.6/32")], "empty": []}
ADDRESS_GROUPS = {"ag": [N("192.0.2.0/24")]}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"direction": "egress", "ethertype": "IPv4"}, None),
        ({"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp"}, None),
        (
            {
                "direction": "ingress",
                "ethertype": "IPv4",
                "protocol": "tcp",
                "port_range_min": 22,
                "port_range_max": 22,
                "remote_ip_prefix": "198.18.0.0/15",
            },
            IngressRule("tcp", 22, 22, (LAB,)),
        ),
        (
            {
                "direction": "ingress",
                "protocol": "tcp",
                "port_range_min": 1,
                "port_range_max": 65535,
            },
            IngressRule("tcp"),
        ),
        (
            {"direction": "ingress", "protocol": "udp", "port_range_min": 53},
            IngressRule("udp", 53, 53),
        ),
        (
            {"direction": "ingress", "protocol": "icmp", "port_range_min": 8},
            IngressRule("icmp", 8, None),
        ),
        (
            {"direction": "ingress", "protocol": "icmp", "port_range_max": 0},
            IngressRule("icmp"),
        ),
        (
            {"direction": "ingress", "protocol": "gre", "port_range_min": 5},
            IngressRule("47"),
        ),
        ({"direction": "ingress", "remote_ip_prefix": "0.0.0.0/0"}, IngressRule(None)),
        ({"direction": "ingress", "remote_ip_prefix": "::/0"}, None),
        (
            {"direction": "ingress", "remote_group_id": "g1"},
            IngressRule(None, None, None, (N("10.81.1.5/32"), N("10.81.1.6/32"))),
        ),
        ({"direction": "ingress", "remote_group_id": "empty"}, None),
        ({"direction": "ingress", "remote_group_id": "unknown"}, None),
        (
            {"direction": "ingress", "protocol": "tcp", "remote_address_group_id": "ag"},
            IngressRule("tcp", None, None, (N("192.0.2.0/24"),)),
        ),
    ],
)
def test_security_group_rules_become_ingress_rules(
    rule: dict[str, Any], expected: IngressRule | None
) -> None:
    assert ingress_rule(rule, MEMBERS, ADDRESS_GROUPS) == expected


def test_an_empty_port_range_is_refused() -> None:
    rule = {"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}
    with pytest.raises(UnsupportedRuleError):
        ingress_rule(rule, {}, {})


def _neutron() -> dict[str, list[dict[str, Any]]]:
    """A small region: two subnets on one router with a gateway, a third subnet alone."""
    return {
        "subnets": [
            {"id": "s-ext", "network_id": "n-ext", "cidr": "198.18.81.0/24", "ip_version": 4},
            {"id": "s-a", "network_id": "n-a", "cidr": "10.81.1.0/24", "ip_version": 4},
            {"id": "s-b", "network_id": "n-b", "cidr": "10.81.2.0/24", "ip_version": 4},
            {"id": "s-c", "network_id": "n-c", "cidr": "10.81.3.0/24", "ip_version": 4},
            {"id": "s-v6", "network_id": "n-a", "cidr": "fd00::/64", "ip_version": 6},
        ],
        "routers": [
            {
                "id": "r1",
                "external_gateway_info": {
                    "network_id": "n-ext",
                    "external_fixed_ips": [
                        {"subnet_id": "s-ext", "ip_address": "198.18.81.5"},
                    ],
                },
            },
            {"id": "r2", "external_gateway_info": None},
        ],
        "ports": [
            {
                "id": "p-r1a",
                "device_owner": "network:router_interface",
                "device_id": "r1",
                "fixed_ips": [{"subnet_id": "s-a", "ip_address": "10.81.1.1"}],
            },
            {
                "id": "p-r1b",
                "device_owner": "network:router_interface",
                "device_id": "r1",
                "fixed_ips": [{"subnet_id": "s-b", "ip_address": "10.81.2.1"}],
            },
            {
                "id": "p-vm1",
                "device_owner": "compute:nova",
                "device_id": "vm-1",
                "mac_address": "FA:16:3E:00:00:01",
                "fixed_ips": [{"subnet_id": "s-a", "ip_address": "10.81.1.5"}],
                "security_groups": ["web"],
                "port_security_enabled": True,
            },
            {
                "id": "p-vm2",
                "device_owner": "compute:nova",
                "device_id": "vm-2",
                "mac_address": "fa:16:3e:00:00:02",
                "fixed_ips": [{"subnet_id": "s-b", "ip_address": "10.81.2.7"}],
                "security_groups": ["web", "ghost"],
                "allowed_address_pairs": [{"ip_address": "10.81.2.100"}],
            },
            {
                "id": "p-vm3",
                "device_owner": "compute:nova",
                "device_id": "vm-3",
                "fixed_ips": [{"subnet_id": "s-c", "ip_address": "10.81.3.9"}],
                "security_groups": [],
                "port_security_enabled": False,
            },
        ],
        "floating_ips": [
            {
                "id": "f1",
                "floating_ip_address": "198.18.81.20",
                "fixed_ip_address": "10.81.1.5",
                "port_id": "p-vm1",
                "floating_network_id": "n-ext",
            },
            {
                "id": "f2",
                "floating_ip_address": "198.18.81.21",
                "fixed_ip_address": None,
                "port_id": None,
                "floating_network_id": "n-ext",
            },
        ],
        "security_groups": [
            {
                "id": "web",
                "security_group_rules": [
                    {
                        "id": "r-ssh",
                        "direction": "ingress",
                        "ethertype": "IPv4",
                        "protocol": "tcp",
                        "port_range_min": 22,
                        "port_range_max": 22,
                        "remote_ip_prefix": "198.18.0.0/15",
                    },
                    {"id": "r-self", "direction": "ingress", "remote_group_id": "web"},
                    {"id": "r-out", "direction": "egress"},
                    {"id": "r-bad", "direction": "ingress", "protocol": "icmpv6"},
                ],
            }
        ],
    }


def _build(neutron: dict[str, list[dict[str, Any]]], problems: list[str]) -> RegionState:
    return build_region_state(
        "castor",
        ports=neutron["ports"],
        floating_ips=neutron["floating_ips"],
        security_groups=neutron["security_groups"],
        routers=neutron["routers"],
        subnets=neutron["subnets"],
        problems=problems,
    )


def _state() -> tuple[RegionState, list[str]]:
    problems: list[str] = []
    return _build(_neutron(), problems), problems


def test_region_state_from_neutron() -> None:
    state, problems = _state()
    assert state.external_subnets == (N("198.18.81.0/24"),)
    assert state.tenant_subnets == (N("10.81.1.0/24"), N("10.81.2.0/24"), N("10.81.3.0/24"))
    assert state.floating_ips == (FloatingIP(A("198.18.81.20"), A("10.81.1.5"), "f1"),)
    assert state.router_nat == (
        RouterNat(N("10.81.1.0/24"), A("198.18.81.5")),
        RouterNat(N("10.81.2.0/24"), A("198.18.81.5")),
    )
    assert state.router_peers == (
        (N("10.81.1.0/24"), N("10.81.2.0/24")),
        (N("10.81.2.0/24"), N("10.81.1.0/24")),
    )
    vm1, vm2, vm3 = state.ports
    assert (vm1.instance_uuid, vm1.mac, vm1.ips) == ("vm-1", "fa:16:3e:00:00:01", (A("10.81.1.5"),))
    members = (N("10.81.1.5/32"), N("10.81.2.7/32"), N("10.81.2.100/32"))
    assert vm1.rules == (
        IngressRule(None, None, None, members),
        IngressRule("tcp", 22, 22, (LAB,)),
    )
    assert vm2.rules == vm1.rules
    assert vm2.enabled
    assert vm2.stateful
    assert not vm3.enabled
    assert vm3.rules == ()
    assert any("ghost" in p for p in problems)
    assert any("r-bad" in p for p in problems)
    assert state.ports_of("vm-2") == [vm2]


def test_stateless_groups_make_stateless_ports() -> None:
    neutron = _neutron()
    neutron["security_groups"][0]["stateful"] = False
    state = _build(neutron, [])
    assert not state.ports[0].stateful


# --- rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (IngressRule(None), [""]),
        (IngressRule("tcp", 22, 22), ["-p tcp -m tcp --dport 22"]),
        (IngressRule("udp", 5000, 5010), ["-p udp -m udp --dport 5000:5010"]),
        (IngressRule("tcp"), ["-p tcp"]),
        (IngressRule("icmp", 8, 0), ["-p icmp -m icmp --icmp-type 8/0"]),
        (IngressRule("icmp", 3, None), ["-p icmp -m icmp --icmp-type 3"]),
        (IngressRule("47"), ["-p 47"]),
        (
            IngressRule("tcp", 80, 80, (N("10.0.0.1/32"), N("10.0.1.0/24"))),
            ["-s 10.0.0.1/32 -p tcp -m tcp --dport 80", "-s 10.0.1.0/24 -p tcp -m tcp --dport 80"],
        ),
        (IngressRule(None, None, None, (LAB,)), ["-s 198.18.0.0/15"]),
    ],
)
def test_rule_matches(rule: IngressRule, expected: list[str]) -> None:
    assert li.rule_matches(rule) == expected


def test_port_filter_allows_replies_and_rules_then_drops() -> None:
    state, _ = _state()
    vm1, _, vm3 = state.ports
    spec = li.port_filter_table([("eth1", vm3), ("eth0", vm1)])
    assert spec.table == "mangle"
    assert spec.jumps == (li.Jump("PREROUTING", "NMPILAB-SG"),)
    assert spec.chain("NMPILAB-SG").rules == (
        "-i eth0 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-i eth0 -s 10.81.1.5/32 -j RETURN",
        "-i eth0 -s 10.81.2.7/32 -j RETURN",
        "-i eth0 -s 10.81.2.100/32 -j RETURN",
        "-i eth0 -s 198.18.0.0/15 -p tcp -m tcp --dport 22 -j RETURN",
        "-i eth0 -j DROP",
    )


def test_a_stateless_port_gets_no_reply_rule() -> None:
    port = PortFilter("p", "vm", "", (), True, False, (IngressRule("tcp", 22, 22),))
    assert li.port_filter_table([("eth0", port)]).chain("NMPILAB-SG").rules == (
        "-i eth0 -p tcp -m tcp --dport 22 -j RETURN",
        "-i eth0 -j DROP",
    )


def test_interface_names_are_checked() -> None:
    port = PortFilter("p", "vm", "", (), True, True, ())
    with pytest.raises(ValueError, match="interface"):
        li.port_filter_table([("eth0 -j ACCEPT", port)])


LAB_RANGES = li.LabRanges(
    all=(N("10.81.1.0/24"), N("10.82.1.0/24"), N("198.18.0.0/24"), N("198.18.81.0/24")),
    public=(N("198.18.0.0/24"), N("198.18.81.0/24"), N("198.18.82.0/24")),
)


def test_host_rules_of_a_region() -> None:
    state, _ = _state()
    nat, filter_ = li.host_tables(state, LAB_RANGES)
    assert (nat.table, filter_.table) == ("nat", "filter")
    assert nat.jumps == (
        li.Jump("PREROUTING", "NMPILAB-castor-DNAT"),
        li.Jump("OUTPUT", "NMPILAB-castor-DNAT"),
        li.Jump("POSTROUTING", "NMPILAB-castor-POST"),
    )
    assert filter_.jumps == (li.Jump("DOCKER-USER", "NMPILAB-castor-FWD"),)
    assert nat.chain("NMPILAB-castor-DNAT").rules == (
        "-d 198.18.81.20/32 -j DNAT --to-destination 10.81.1.5",
    )
    assert nat.chain("NMPILAB-castor-SNAT").rules == (
        "-s 10.81.1.5/32 -j SNAT --to-source 198.18.81.20",
        "-s 10.81.1.0/24 -j SNAT --to-source 198.18.81.5",
        "-s 10.81.2.0/24 -j SNAT --to-source 198.18.81.5",
    )
    post = nat.chain("NMPILAB-castor-POST").rules
    assert post[:5] == (
        "-s 10.81.1.0/24 -d 10.81.1.0/24 -m conntrack ! --ctstate DNAT -j ACCEPT",
        "-s 10.81.2.0/24 -d 10.81.2.0/24 -m conntrack ! --ctstate DNAT -j ACCEPT",
        "-s 10.81.3.0/24 -d 10.81.3.0/24 -m conntrack ! --ctstate DNAT -j ACCEPT",
        "-s 10.81.1.0/24 -d 10.81.2.0/24 -m conntrack ! --ctstate DNAT -j ACCEPT",
        "-s 10.81.2.0/24 -d 10.81.1.0/24 -m conntrack ! --ctstate DNAT -j ACCEPT",
    )
    # Only lab-bound traffic is SNATed: Internet-bound traffic keeps Docker's masquerade.
    snat_jumps = [r for r in post if r.endswith("-j NMPILAB-castor-SNAT")]
    assert snat_jumps == [
        "-d 10.81.1.0/24 -j NMPILAB-castor-SNAT",
        "-d 10.81.2.0/23 -j NMPILAB-castor-SNAT",
        "-d 10.82.1.0/24 -j NMPILAB-castor-SNAT",
        "-d 198.18.0.0/24 -j NMPILAB-castor-SNAT",
        "-d 198.18.81.0/24 -j NMPILAB-castor-SNAT",
        "-d 198.18.82.0/24 -j NMPILAB-castor-SNAT",
    ]
    assert (
        "-s 198.18.0.0/24 -m conntrack --ctstate DNAT --ctorigdst 198.18.81.0/24 -j ACCEPT" in post
    )
    assert post[-1] == "-s 10.81.3.0/24 -d 10.81.3.0/24 -m conntrack --ctstate DNAT -j MASQUERADE"
    fwd = filter_.chain("NMPILAB-castor-FWD").rules
    assert "-s 10.81.2.0/23 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" in fwd
    assert (
        "-d 10.81.1.5/32 -m conntrack --ctstate DNAT --ctorigdst 198.18.81.20/32 -j ACCEPT" in fwd
    )
    assert "-s 10.81.1.0/24 -d 10.81.2.0/24 -j ACCEPT" in fwd
    assert "-s 10.81.1.5/32 -d 198.18.0.0/24 -j ACCEPT" in fwd
    assert "-s 10.81.2.0/24 -d 198.18.82.0/24 -j ACCEPT" in fwd
    # Subnet 10.81.3.0/24 has no router: it reaches nothing across bridges.
    assert not [r for r in fwd if r.startswith("-s 10.81.3.0/24") and "ESTABLISHED" not in r]


def test_a_region_with_nothing_still_owns_its_chains() -> None:
    nat, filter_ = li.host_tables(RegionState("jusuf"), li.LabRanges())
    assert [c.name for c in nat.chains] == [
        "NMPILAB-jusuf-DNAT",
        "NMPILAB-jusuf-POST",
        "NMPILAB-jusuf-SNAT",
    ]
    assert all(c.rules == () for c in (*nat.chains, *filter_.chains))


@pytest.mark.parametrize(
    "parts", [("castor", "DNAT"), ("a-very-long-region-name", "POST"), ("x y", "FWD")]
)
def test_chain_names_fit_iptables(parts: tuple[str, str]) -> None:
    name = li.chain_name(*parts)
    assert name.startswith("NMPILAB-")
    assert len(name) <= 28
    assert " " not in name


def test_revision_follows_content() -> None:
    a = li.TableSpec("nat", (li.Chain("NMPILAB-x", ("-j ACCEPT",)),))
    b = li.TableSpec("nat", (li.Chain("NMPILAB-x", ("-j ACCEPT",)),))
    c = li.TableSpec("nat", (li.Chain("NMPILAB-x", ("-j RETURN",)),))
    assert a.revision == b.revision != c.revision


# --- reconciliation against a simulated kernel ----------------------------------------------

BUILTINS = {
    "raw": ["PREROUTING", "OUTPUT"],
    "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
    "filter": ["INPUT", "FORWARD", "OUTPUT"],
}


class SimKernel:
    """Enough of iptables-save / iptables-restore --noflush for the agent and chaos."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list[str]]] = {
            t: {c: [] for c in chains} for t, chains in BUILTINS.items()
        }
        self.tables["filter"]["DOCKER-USER"] = ["-j RETURN"]
        self.tables["filter"]["FORWARD"] = ["-j DOCKER-USER"]
        self.tables["nat"]["POSTROUTING"] = ["-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"]
        self.restores: list[str] = []

    def save(self, table: str | None = None) -> str:
        out = []
        for name, chains in self.tables.items():
            if table and name != table:
                continue
            out.append(f"*{name}")
            out += [f":{c} {'ACCEPT' if c in BUILTINS[name] else '-'} [0:0]" for c in chains]
            out += [f"-A {c} {r}" for c, rules in chains.items() for r in rules]
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def restore(self, text: str) -> None:
        self.restores.append(text)
        table: dict[str, list[str]] = {}
        staged = {t: {c: list(r) for c, r in chains.items()} for t, chains in self.tables.items()}
        for line in text.splitlines():
            if line.startswith("*"):
                table = staged[line[1:]]
            elif line.startswith(":"):
                table[line[1:].split()[0]] = []
            elif line.startswith("-A "):
                _, chain, rule = line.split(" ", 2)
                table[chain].append(rule.replace('"', ""))
            elif line.startswith("-I "):
                _, chain, _position, rule = line.split(" ", 3)
                table[chain].insert(0, rule)
            elif line.startswith("-D "):
                _, chain, rule = line.split(" ", 2)
                table[chain].remove(rule)  # ValueError: the real one fails too
            elif line.startswith("-F "):
                table[line.split()[1]] = []
            elif line.startswith("-X "):
                del table[line.split()[1]]
        self.tables = staged  # one transaction: all or nothing

    def run(self, argv: Sequence[str], stdin: str | None) -> str:
        args = list(argv)
        if args[0] == "nsenter":
            args = args[2:]
        if args[0] == "iptables-save":
            return self.save(args[2] if len(args) > 2 else None)
        if args[0] == "iptables-restore":
            assert stdin is not None
            self.restore(stdin)
            return ""
        raise AssertionError(f"unexpected command {args}")


class FakeNeutron:
    def __init__(self) -> None:
        self.data = _neutron()
        self.fail = False

    def read(self, previous: netagent.Snapshot | None = None) -> netagent.Snapshot:
        if self.fail:
            raise RuntimeError("neutron is down")
        return netagent.Snapshot(**json.loads(json.dumps(self.data)))


class FakeDockerApi:
    def networks(self) -> list[dict[str, Any]]:
        return [
            {
                "Name": "nmpilab-castor-n-a",
                "Labels": {"nmpi.lab": "1", "nmpi.lab.network-id": "n-a"},
                "IPAM": {"Config": [{"Subnet": "10.81.1.0/24", "Gateway": "10.81.1.1"}]},
            },
            {
                "Name": "nmpilab-castor-ext",
                "Labels": {"nmpi.lab": "1", "nmpi.lab.region": "castor"},
                "IPAM": {"Config": [{"Subnet": "198.18.81.0/24"}]},
            },
            {"Name": "bridge", "Labels": {}, "IPAM": {"Config": [{"Subnet": "172.17.0.0/16"}]}},
        ]

    def containers(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return []


class FakeDocker:
    api = FakeDockerApi()


class Recorder:
    """The agent's command runner: iptables to the simulated kernel, conntrack recorded."""

    def __init__(self, kernel: SimKernel) -> None:
        self.kernel = kernel
        self.conntrack: list[list[str]] = []

    def __call__(self, argv: Sequence[str], stdin: str | None) -> str:
        if argv[0] == "conntrack":
            self.conntrack.append(list(argv))
            return ""
        return self.kernel.run(argv, stdin)


def _agent() -> tuple[netagent.NetAgent, SimKernel, FakeNeutron, Recorder, io.StringIO]:
    kernel, neutron, out = SimKernel(), FakeNeutron(), io.StringIO()
    recorder = Recorder(kernel)
    agent = netagent.NetAgent(
        "castor", neutron, FakeDocker(), runner=recorder, log=netagent.JsonLog("castor", out)
    )
    agent.has_conntrack = True
    return agent, kernel, neutron, recorder, out


def _events(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_agent_applies_once_then_only_on_change() -> None:
    agent, kernel, neutron, recorder, out = _agent()
    assert agent.round() == 0
    assert len(kernel.restores) == 2  # nat and filter
    assert kernel.tables["nat"]["PREROUTING"][0] == "-j NMPILAB-castor-DNAT"
    assert kernel.tables["nat"]["POSTROUTING"][0] == "-j NMPILAB-castor-POST"
    assert kernel.tables["filter"]["DOCKER-USER"] == ["-j NMPILAB-castor-FWD", "-j RETURN"]
    assert (
        kernel.tables["nat"]["NMPILAB-castor-DNAT"][1]
        == "-d 198.18.81.20/32 -j DNAT --to-destination 10.81.1.5"
    )
    assert recorder.conntrack == [
        ["conntrack", "-D", "--orig-dst", "198.18.81.20"],
        ["conntrack", "-D", "--reply-dst", "198.18.81.20"],
    ]

    assert agent.round() == 0
    assert len(kernel.restores) == 2, "an unchanged state was applied again"

    # Docker puts a new network's MASQUERADE on top of POSTROUTING: the jump goes back first.
    kernel.tables["nat"]["POSTROUTING"].insert(0, "-s 10.81.9.0/24 ! -o br-x -j MASQUERADE")
    assert agent.round() == 0
    assert kernel.tables["nat"]["POSTROUTING"][0] == "-j NMPILAB-castor-POST"
    assert kernel.tables["nat"]["POSTROUTING"].count("-j NMPILAB-castor-POST") == 1

    # Someone flushes the chain: it comes back.
    kernel.tables["nat"]["NMPILAB-castor-DNAT"] = []
    agent.round()
    assert len(kernel.tables["nat"]["NMPILAB-castor-DNAT"]) == 2

    # The floating IP moves: new DNAT, and the flows to it are forgotten.
    recorder.conntrack.clear()
    neutron.data["floating_ips"][0]["fixed_ip_address"] = "10.81.2.7"
    neutron.data["floating_ips"][0]["port_id"] = "p-vm2"
    agent.round()
    assert (
        kernel.tables["nat"]["NMPILAB-castor-DNAT"][1]
        == "-d 198.18.81.20/32 -j DNAT --to-destination 10.81.2.7"
    )
    assert [c[2:] for c in recorder.conntrack] == [
        ["--orig-dst", "198.18.81.20"],
        ["--reply-dst", "198.18.81.20"],
    ]
    moved = [e for e in _events(out) if e["event"] == "floating_ip"]
    assert moved[-1] == {**moved[-1], "was": "10.81.1.5", "now": "10.81.2.7"}


def test_agent_keeps_the_last_state_while_neutron_is_down() -> None:
    agent, kernel, neutron, _, out = _agent()
    neutron.fail = True
    assert agent.round() == 1
    assert kernel.restores == [], "rules were written before Neutron was ever read"
    neutron.fail = False
    agent.round()
    applied = dict(kernel.tables["nat"])
    neutron.fail = True
    kernel.tables["nat"]["NMPILAB-castor-DNAT"] = []  # lost meanwhile: restored from memory
    assert agent.round() == 1
    assert kernel.tables["nat"]["NMPILAB-castor-DNAT"] == applied["NMPILAB-castor-DNAT"]
    assert agent.errors == 2
    errors = [e for e in _events(out) if e["event"] == "error"]
    assert errors
    assert errors[0]["where"] == "neutron"


def test_agent_cleanup_removes_its_chains_only() -> None:
    agent, kernel, *_ = _agent()
    agent.round()
    agent.cleanup()
    nat = kernel.tables["nat"]
    assert not [c for c in nat if c.startswith("NMPILAB")]
    assert nat["POSTROUTING"] == ["-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"]
    assert kernel.tables["filter"]["DOCKER-USER"] == ["-j RETURN"]


class RecordingReader(netagent.NeutronReader):
    """The real reader over canned collections: which GETs does a round cost?"""

    def __init__(self) -> None:
        super().__init__("lab-admin", "castor", None)
        self.data = _neutron()
        self.data["networks"] = [{"id": "n-ext"}]
        self.gets: list[str] = []

    def _list(
        self, path: str, key: str, fields: Sequence[str], filters: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        self.gets.append(path)
        name = {"/floatingips": "floating_ips", "/security-groups": "security_groups"}
        return list(self.data[name.get(path, path.strip("/"))])


def test_reader_reads_groups_routers_and_subnets_only_when_needed() -> None:
    reader = RecordingReader()
    full = reader.read()
    assert reader.gets == [
        "/ports",
        "/floatingips",
        "/security-groups",
        "/routers",
        "/subnets",
        "/networks",
    ]
    reader.gets.clear()
    again = reader.read(full)
    assert reader.gets == ["/ports", "/floatingips"]
    assert again.security_groups == full.security_groups
    # A port on a subnet the previous read did not know: everything is read again.
    reader.data["subnets"].append({"id": "s-new", "network_id": "n-a", "cidr": "10.81.9.0/24"})
    reader.data["ports"].append(
        {"id": "p-new", "device_owner": "compute:nova", "fixed_ips": [{"subnet_id": "s-new"}]}
    )
    reader.gets.clear()
    reader.read(full)
    assert "/subnets" in reader.gets


@pytest.mark.parametrize(
    ("change", "covered"),
    [
        ({}, True),
        ({"ports": [{"fixed_ips": [{"subnet_id": "s-x"}]}]}, False),
        ({"ports": [{"security_groups": ["g-x"]}]}, False),
        ({"ports": [{"device_owner": "network:router_gateway", "device_id": "r-x"}]}, False),
        ({"ports": [{"device_owner": "network:router_interface", "device_id": "r1"}]}, True),
        ({"floating_ips": [{"floating_network_id": "n-other"}]}, False),
    ],
)
def test_what_a_previous_read_covers(
    change: dict[str, list[dict[str, Any]]], covered: bool
) -> None:
    data = _neutron()
    previous = netagent.Snapshot(
        ports=data["ports"],
        floating_ips=data["floating_ips"],
        security_groups=data["security_groups"],
        routers=data["routers"],
        subnets=data["subnets"],
        external_networks=[{"id": "n-ext"}],
    )
    ports = data["ports"] + change.get("ports", [])
    fips = data["floating_ips"] + change.get("floating_ips", [])
    assert netagent.covers(previous, ports, fips) is covered


def test_restore_text_and_sync() -> None:
    spec = li.TableSpec(
        "nat",
        (li.Chain("NMPILAB-t-DNAT", ("-d 1.2.3.4/32 -j ACCEPT",)),),
        (li.Jump("OUTPUT", "NMPILAB-t-DNAT"),),
    )
    assert not li.in_sync(spec, None)
    text = li.restore_text(spec, None)
    assert text.splitlines() == [
        "*nat",
        ":NMPILAB-t-DNAT - [0:0]",
        f'-A NMPILAB-t-DNAT -m comment --comment "nmpilab-rev:{spec.revision}"',
        "-A NMPILAB-t-DNAT -d 1.2.3.4/32 -j ACCEPT",
        "-I OUTPUT 1 -j NMPILAB-t-DNAT",
        "COMMIT",
    ]
    saved = li.parse_save(
        "*nat\n:OUTPUT ACCEPT [0:0]\n:NMPILAB-t-DNAT - [0:0]\n"
        "-A OUTPUT -j NMPILAB-other\n-A OUTPUT -j NMPILAB-t-DNAT\n-A OUTPUT -j DOCKER\n"
        f'-A NMPILAB-t-DNAT -m comment --comment "nmpilab-rev:{spec.revision}"\n'
        "-A NMPILAB-t-DNAT -d 1.2.3.4/32 -j ACCEPT\nCOMMIT\n"
    )["nat"]
    assert li.in_sync(spec, saved), "another region's jump ahead of ours is fine"
    saved.chains["OUTPUT"].append("-j NMPILAB-t-DNAT")
    assert not li.in_sync(spec, saved), "a duplicate jump"
    assert li.restore_text(spec, saved).count("-D OUTPUT -j NMPILAB-t-DNAT") == 2


@pytest.mark.parametrize(
    ("before", "after", "moved"),
    [
        ({}, {}, []),
        ({"1.1.1.1": "10.0.0.1"}, {"1.1.1.1": "10.0.0.1"}, []),
        ({"1.1.1.1": "10.0.0.1"}, {"1.1.1.1": "10.0.0.2"}, ["1.1.1.1"]),
        ({"1.1.1.1": "10.0.0.1"}, {}, ["1.1.1.1"]),
        ({}, {"1.1.1.2": "10.0.0.1"}, ["1.1.1.2"]),
    ],
)
def test_moved_floating_ips(
    before: dict[str, str], after: dict[str, str], moved: list[str]
) -> None:
    assert li.moved_floating_ips(before, after) == moved


def test_dnat_map_reads_saved_rules() -> None:
    rules = [
        '-m comment --comment "nmpilab-rev:x"',
        "-d 198.18.81.20/32 -j DNAT --to-destination 10.81.1.5",
    ]
    assert li.dnat_map(rules) == {"198.18.81.20": "10.81.1.5"}


def test_lab_ranges_from_docker_networks() -> None:
    ranges = netagent.lab_ranges(FakeDockerApi().networks())
    assert ranges.all == (N("10.81.1.0/24"), N("198.18.81.0/24"))
    assert ranges.public == (N("198.18.81.0/24"),)


def test_interfaces_are_found_by_address_then_mac() -> None:
    links = netagent.interfaces(
        json.dumps(
            [
                {"ifname": "lo", "address": "00:00:00:00:00:00", "addr_info": []},
                {
                    "ifname": "eth0",
                    "link_index": 41,
                    "address": "02:42:0a:51:01:05",
                    "addr_info": [{"family": "inet", "local": "10.81.1.5"}],
                },
                {"ifname": "eth1", "address": "FA:16:3E:00:00:02", "addr_info": []},
            ]
        )
    )
    by_ip = PortFilter("p1", "vm", "aa:aa:aa:aa:aa:aa", (A("10.81.1.5"),), True, True, ())
    by_mac = PortFilter("p2", "vm", "fa:16:3e:00:00:02", (A("10.81.2.7"),), True, True, ())
    absent = PortFilter("p3", "vm", "fa:16:3e:00:00:03", (A("10.81.3.7"),), True, True, ())
    pairs, missing = netagent.match_interfaces([by_ip, by_mac, absent], links)
    assert [(link.name, link.peer, port) for link, port in pairs] == [
        ("eth0", 41, by_ip),
        ("eth1", None, by_mac),
    ]
    assert missing == [absent]


def test_hairpin_is_set_on_the_host_port_of_an_interface(tmp_path: Path) -> None:
    for name, index, hairpin in (("veth1", 41, "0"), ("veth2", 42, "1"), ("eth0", 2, None)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ifindex").write_text(f"{index}\n")
        if hairpin is not None:
            (tmp_path / name / "brport").mkdir()
            (tmp_path / name / "brport" / "hairpin_mode").write_text(f"{hairpin}\n")
    assert netagent.set_hairpin(41, str(tmp_path)) == "veth1"
    assert (tmp_path / "veth1" / "brport" / "hairpin_mode").read_text() == "1"
    assert netagent.set_hairpin(41, str(tmp_path)) is None, "already set"
    assert netagent.set_hairpin(42, str(tmp_path)) is None
    assert netagent.set_hairpin(2, str(tmp_path)) is None, "not a bridge port"
    assert netagent.set_hairpin(99, str(tmp_path)) is None


# --- chaos: the cut's rules -------------------------------------------------------------------


def test_cut_rules_treat_the_hosts_own_addresses_as_outside() -> None:
    rules = chaos.cut_rules(
        "castor",
        [N("198.18.81.0/24"), N("10.81.1.0/24"), N("10.81.0.0/24")],
        [A("10.81.1.1"), A("198.18.81.1"), A("192.168.1.10"), A("127.0.0.1")],
    )
    assert rules == {
        "NMPILAB-CUT-castor": [
            "-s 10.81.1.1/32 -g NMPILAB-CUT-castor-O",
            "-s 198.18.81.1/32 -g NMPILAB-CUT-castor-O",
            "-s 10.81.0.0/23 -g NMPILAB-CUT-castor-I",
            "-s 198.18.81.0/24 -g NMPILAB-CUT-castor-I",
            "-g NMPILAB-CUT-castor-O",
        ],
        "NMPILAB-CUT-castor-I": [
            "-d 10.81.1.1/32 -j DROP",
            "-d 198.18.81.1/32 -j DROP",
            "-d 10.81.0.0/23 -j RETURN",
            "-d 198.18.81.0/24 -j RETURN",
            "-j DROP",
        ],
        "NMPILAB-CUT-castor-O": [
            "-d 10.81.1.1/32 -j RETURN",
            "-d 198.18.81.1/32 -j RETURN",
            "-d 10.81.0.0/23 -j DROP",
            "-d 198.18.81.0/24 -j DROP",
        ],
    }


def test_cut_and_restore_are_idempotent() -> None:
    kernel = SimKernel()
    rules = chaos.cut_rules("castor", [N("198.18.81.0/24")], [])
    for _ in range(2):
        kernel.restore(
            chaos.cut_restore_text("castor", rules, chaos.raw_chains(kernel.save("raw")))
        )
    raw = kernel.tables["raw"]
    assert raw["PREROUTING"] == ["-j NMPILAB-CUT-castor"]
    assert raw["OUTPUT"] == ["-j NMPILAB-CUT-castor"]
    assert raw["NMPILAB-CUT-castor-O"] == ["-d 198.18.81.0/24 -j DROP"]
    for _ in range(2):
        text = chaos.uncut_restore_text("castor", chaos.raw_chains(kernel.save("raw")))
        if text:
            kernel.restore(text)
    assert kernel.tables["raw"] == {"PREROUTING": [], "OUTPUT": []}


def test_a_cut_needs_ranges() -> None:
    with pytest.raises(chaos.ChaosError):
        chaos.cut_rules("castor", [], [])


def test_unknown_region_is_a_clear_error() -> None:
    with pytest.raises(chaos.ChaosError, match=r"unknown region 'nowhere' \(the lab's regions"):
        chaos.restore_region("nowhere")
