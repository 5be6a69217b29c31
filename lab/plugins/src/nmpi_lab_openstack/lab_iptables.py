"""Rendering the lab's iptables rule sets, and deciding when the kernel needs them again.

Pure functions (no kernel, no Docker, no neutron): unit-tested from the main venv.

Every rule set is a TableSpec: chains the agent owns (named NMPILAB-...) plus jumps into
chains it does not own (PREROUTING, DOCKER-USER, ...). It is applied with
`iptables-restore --noflush`: declaring an owned chain replaces its content whole, in one
transaction, and nothing else in the table is touched. The first rule of every owned
chain is a comment carrying the revision (a hash of the whole spec), so one
`iptables-save` tells whether the kernel holds exactly this revision: the agent is level
triggered (rules flushed by someone else come back next round) without rewriting
unchanged rules every round.

Host rules of one region (filter and nat tables, the host's network namespace):

  nat PREROUTING, OUTPUT -> NMPILAB-<r>-DNAT   floating IP -> fixed IP (from bridges and
                                               from the host itself)
  nat POSTROUTING -> NMPILAB-<r>-POST          no NAT inside a subnet or between subnets
                                               of one router; lab-bound traffic of a fixed
                                               IP with a floating IP leaves as that
                                               floating IP (NMPILAB-<r>-SNAT), other
                                               subnets behind a router as the router's
                                               gateway IP; traffic from the lab's public
                                               ranges to a floating IP keeps its source
  filter DOCKER-USER -> NMPILAB-<r>-FWD        what Docker's bridge isolation would drop:
                                               floating IP flows, routed subnets, egress
                                               to the lab's public ranges, replies

Instance ingress filter (mangle table inside the instance container's namespace):

  mangle PREROUTING -> NMPILAB-SG              per interface: replies, the security group
                                               rules (RETURN), then DROP. mangle runs
                                               before the instance's own DNAT, so ports
                                               published by its inner Docker engine are
                                               filtered like any other port.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nmpi_lab_openstack.lab_state import (
    PORT_PROTOCOLS,
    IngressRule,
    IPv4Address,
    IPv4Network,
    PortFilter,
    RegionState,
)

PREFIX = "NMPILAB"
REVISION_TAG = "nmpilab-rev:"
MAX_CHAIN_NAME = 28  # XT_EXTENSION_MAXNAMELEN - 1
SG_CHAIN = f"{PREFIX}-SG"
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_.:@/-]+$")


def chain_name(*parts: str) -> str:
    """NMPILAB-<parts...>, shortened with a hash when longer than iptables allows."""
    name = "-".join((PREFIX, *parts))
    if len(name) <= MAX_CHAIN_NAME and _SAFE_TOKEN.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    tail = re.sub(r"[^A-Za-z0-9]", "", parts[-1])[:6] if parts else ""
    return f"{PREFIX}-{digest}-{tail}".rstrip("-")


def region_chains(region: str) -> dict[str, str]:
    """The host chains of one region's agent, by role."""
    return {kind: chain_name(region, kind) for kind in ("DNAT", "POST", "SNAT", "FWD")}


@dataclass(frozen=True)
class Chain:
    """An owned chain: its rules are the text after `-A <name> `."""

    name: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Jump:
    """`-j target` in a chain the agent does not own, kept ahead of other rules there."""

    chain: str
    target: str


@dataclass(frozen=True)
class TableSpec:
    table: str
    chains: tuple[Chain, ...]
    jumps: tuple[Jump, ...] = ()
    revision: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        text = repr((self.table, self.chains, self.jumps))
        object.__setattr__(self, "revision", hashlib.sha256(text.encode()).hexdigest()[:16])

    @property
    def revision_rule(self) -> str:
        return f'-m comment --comment "{REVISION_TAG}{self.revision}"'

    def chain(self, name: str) -> Chain:
        return next(c for c in self.chains if c.name == name)


@dataclass
class SavedTable:
    """One table of `iptables-save` output: every chain's rules, in order."""

    chains: dict[str, list[str]] = field(default_factory=dict)


def parse_save(text: str) -> dict[str, SavedTable]:
    """Parse `iptables-save` output into tables -> chains -> rules (text after `-A NAME `)."""
    tables: dict[str, SavedTable] = {}
    current: SavedTable | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            current = tables.setdefault(line[1:], SavedTable())
        elif current is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            current.chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            _, name, *rest = line.split(" ", 2)
            current.chains.setdefault(name, []).append(rest[0] if rest else "")
    return tables


def _jump_rule(target: str) -> str:
    return f"-j {target}"


def _leading_owned_jumps(rules: Sequence[str]) -> list[str]:
    """The targets of the NMPILAB jumps at the head of a chain (before any other rule)."""
    targets = []
    for rule in rules:
        match = re.fullmatch(rf"-j ({PREFIX}-\S+)", rule.strip())
        if match is None:
            break
        targets.append(match.group(1))
    return targets


def jump_in_place(rules: Sequence[str], target: str) -> bool:
    """True when `-j target` is in the chain once, among the NMPILAB jumps at its head."""
    occurrences = sum(1 for rule in rules if rule.strip() == _jump_rule(target))
    return occurrences == 1 and target in _leading_owned_jumps(rules)


def in_sync(spec: TableSpec, saved: SavedTable | None) -> bool:
    """Whether the kernel's table already holds exactly this spec (revision and jumps)."""
    if saved is None:
        return False
    for chain in spec.chains:
        rules = saved.chains.get(chain.name)
        if rules is None or len(rules) != len(chain.rules) + 1:
            return False
        if f"{REVISION_TAG}{spec.revision}" not in rules[0]:
            return False
    return all(jump_in_place(saved.chains.get(j.chain, []), j.target) for j in spec.jumps)


def restore_text(spec: TableSpec, saved: SavedTable | None) -> str:
    """iptables-restore --noflush input replacing the spec's chains whole, fixing jumps.

    A jump whose chain does not exist (DOCKER-USER before Docker ran) is left out: the
    caller sees it as not in sync next round and tries again.
    """
    chains = saved.chains if saved is not None else {}
    lines = [f"*{spec.table}"]
    lines += [f":{chain.name} - [0:0]" for chain in spec.chains]
    for chain in spec.chains:
        lines.append(f"-A {chain.name} {spec.revision_rule}")
        lines += [f"-A {chain.name} {rule}" for rule in chain.rules]
    builtins = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}
    for jump in spec.jumps:
        rules = chains.get(jump.chain)
        if rules is None and jump.chain not in builtins:
            continue
        rules = rules or []
        if jump_in_place(rules, jump.target):
            continue
        occurrences = sum(1 for rule in rules if rule.strip() == _jump_rule(jump.target))
        lines += [f"-D {jump.chain} -j {jump.target}"] * occurrences
        lines.append(f"-I {jump.chain} 1 -j {jump.target}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def removal_text(table: str, names: Iterable[str], saved: SavedTable | None) -> str | None:
    """iptables-restore --noflush input deleting owned chains and every jump to them."""
    if saved is None:
        return None
    doomed = [name for name in names if name in saved.chains]
    if not doomed:
        return None
    lines = [f"*{table}"]
    for chain, rules in saved.chains.items():
        if chain in doomed:
            continue
        for rule in rules:
            target = rule.strip().removeprefix("-j ")
            if rule.strip().startswith("-j ") and target in doomed:
                lines.append(f"-D {chain} -j {target}")
    lines += [f"-F {name}" for name in doomed]
    lines += [f"-X {name}" for name in doomed]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# --- host rules of one region -------------------------------------------------------------


@dataclass(frozen=True)
class LabRanges:
    """The lab's address ranges as the host's Docker networks show them.

    all:    every lab network's CIDR (tenant subnets of every region, services, external);
    public: the lab's "Internet": the services network and the external (floating IP)
            networks, reachable from a subnet that leaves through a floating IP or a router.
    """

    all: tuple[IPv4Network, ...] = ()
    public: tuple[IPv4Network, ...] = ()


def _collapse(networks: Iterable[IPv4Network]) -> list[IPv4Network]:
    return sorted(ipaddress.collapse_addresses(set(networks)))


def _host(address: IPv4Address) -> str:
    return f"{address}/32"


def host_tables(state: RegionState, lab: LabRanges) -> list[TableSpec]:
    """The nat and filter rule sets of one region on the host."""
    names = region_chains(state.region)
    dnat, post, snat, fwd = names["DNAT"], names["POST"], names["SNAT"], names["FWD"]
    tenant, external = list(state.tenant_subnets), list(state.external_subnets)
    public = _collapse([*lab.public, *external])
    destinations = _collapse([*lab.all, *lab.public, *tenant, *external])

    dnat_rules = [
        f"-d {_host(f.address)} -j DNAT --to-destination {f.fixed_ip}" for f in state.floating_ips
    ]
    snat_rules = [
        f"-s {_host(f.fixed_ip)} -j SNAT --to-source {f.address}" for f in state.floating_ips
    ]
    snat_rules += [f"-s {n.subnet} -j SNAT --to-source {n.gateway_ip}" for n in state.router_nat]

    post_rules = [f"-s {x} -d {x} -m conntrack ! --ctstate DNAT -j ACCEPT" for x in tenant]
    post_rules += [
        f"-s {a} -d {b} -m conntrack ! --ctstate DNAT -j ACCEPT" for a, b in state.router_peers
    ]
    if snat_rules:
        post_rules += [f"-d {d} -j {snat}" for d in destinations]
    post_rules += [
        f"-s {s} -m conntrack --ctstate DNAT --ctorigdst {e} -j ACCEPT"
        for s in public
        for e in external
    ]
    # Hairpin to a floating IP from its own subnet with no other NAT: replies must come back.
    post_rules += [f"-s {x} -d {x} -m conntrack --ctstate DNAT -j MASQUERADE" for x in tenant]

    region_ranges = _collapse([*tenant, *external])
    fwd_rules = []
    for x in region_ranges:
        fwd_rules.append(f"-s {x} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        fwd_rules.append(f"-d {x} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    fwd_rules += [
        f"-d {_host(f.fixed_ip)} -m conntrack --ctstate DNAT --ctorigdst {_host(f.address)}"
        " -j ACCEPT"
        for f in state.floating_ips
    ]
    fwd_rules += [f"-s {a} -d {b} -j ACCEPT" for a, b in state.router_peers]
    leaving = [_host(f.fixed_ip) for f in state.floating_ips]
    leaving += [str(n.subnet) for n in state.router_nat]
    fwd_rules += [f"-s {src} -d {p} -j ACCEPT" for src in dict.fromkeys(leaving) for p in public]
    for e in external:
        fwd_rules += [f"-s {e} -d {p} -j ACCEPT" for p in public if p != e]
        fwd_rules += [f"-s {p} -d {e} -j ACCEPT" for p in public if p != e]

    nat = TableSpec(
        "nat",
        (
            Chain(dnat, tuple(dnat_rules)),
            Chain(post, tuple(post_rules)),
            Chain(snat, tuple(snat_rules)),
        ),
        (Jump("PREROUTING", dnat), Jump("OUTPUT", dnat), Jump("POSTROUTING", post)),
    )
    filter_ = TableSpec("filter", (Chain(fwd, tuple(fwd_rules)),), (Jump("DOCKER-USER", fwd),))
    return [nat, filter_]


_DNAT_RULE = re.compile(r"-d (\S+?)(?:/32)? .*-j DNAT --to-destination (\S+)")


def dnat_map(rules: Sequence[str]) -> dict[str, str]:
    """Floating IP -> fixed IP, from the saved rules of a DNAT chain."""
    found = {}
    for rule in rules:
        match = _DNAT_RULE.search(rule)
        if match:
            found[match.group(1)] = match.group(2).split(":")[0]
    return found


def moved_floating_ips(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Floating IPs whose target changed (added, moved or removed): their flows are stale."""
    return sorted(ip for ip in {*before, *after} if before.get(ip) != after.get(ip))


# --- instance ingress filter (inside the instance's network namespace) --------------------


def rule_matches(rule: IngressRule) -> list[str]:
    """The iptables match arguments of one ingress rule (one per source prefix)."""
    parts: list[str] = []
    if rule.protocol is not None:
        parts += ["-p", rule.protocol]
        if rule.protocol in PORT_PROTOCOLS and rule.port_min is not None:
            high = rule.port_max if rule.port_max is not None else rule.port_min
            ports = str(rule.port_min) if high == rule.port_min else f"{rule.port_min}:{high}"
            parts += ["-m", rule.protocol, "--dport", ports]
        elif rule.protocol == "icmp" and rule.port_min is not None:
            icmp = str(rule.port_min)
            if rule.port_max is not None:
                icmp += f"/{rule.port_max}"
            parts += ["-m", "icmp", "--icmp-type", icmp]
    match = " ".join(parts)
    if rule.sources is None:
        return [match]
    return [f"-s {source} {match}".rstrip() for source in rule.sources]


def port_filter_table(ports: Sequence[tuple[str, PortFilter]]) -> TableSpec:
    """The mangle rule set of one instance: (interface name, port filter) pairs."""
    rules: list[str] = []
    for ifname, port in sorted(ports, key=lambda item: (item[0], item[1].port_id)):
        if not _SAFE_TOKEN.match(ifname):
            raise ValueError(f"unexpected interface name {ifname!r}")
        if not port.enabled:
            continue  # port security disabled: this interface is not filtered
        on = f"-i {ifname}"
        if port.stateful:
            rules.append(f"{on} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN")
        for rule in port.rules:
            rules += [f"{on} {match} -j RETURN".replace("  ", " ") for match in rule_matches(rule)]
        rules.append(f"{on} -j DROP")
    return TableSpec("mangle", (Chain(SG_CHAIN, tuple(rules)),), (Jump("PREROUTING", SG_CHAIN),))
