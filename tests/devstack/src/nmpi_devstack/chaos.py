"""Failure injection for the chaos tests: cut a region off, restore it, kill or freeze a VM.

`nmpi-devstack cut|restore|kill|freeze|thaw` call these. They act on the kernel and on
Docker, never through OpenStack: a real site loss does not ask the cloud's API either.

Cutting a region off drops, in the host's raw table (before connection tracking and NAT,
so established flows stop too), every packet between the region's ranges and anything
else, in both directions and including the host's own traffic:

  raw PREROUTING, OUTPUT -> NMPILAB-CUT-<r>       source inside the region? goto ...-I
                                                  otherwise                 goto ...-O
  NMPILAB-CUT-<r>-I   destination inside: pass; anything else (the host included): DROP
  NMPILAB-CUT-<r>-O   destination inside: DROP; anything else: pass

The region's ranges are its external (floating IP) network and the subnets of the Docker
networks labelled nmpi.lab.region=<region> (its tenant subnets), as they are when the cut
is made: cut again to include networks created since. The host's own addresses inside
those ranges (the bridges' gateways) count as outside: the host loses the region too.
Traffic inside the region (one subnet, across its subnets, to its own floating IPs) still
flows. These chains belong to no one else: the lab network agent never touches the raw
table, so a cut survives its rounds. Cutting twice is harmless; restore removes exactly
these chains and the jumps to them.

Instances are found by their container's labels (nmpi.lab.instance-name,
nmpi.lab.instance-uuid) or container name. Killing is `docker kill` (the VM's power is
cut; Nova sees it shut off); freezing is `docker pause`: every process of the VM stops,
though its kernel (the host's, shared) still answers pings and TCP handshakes, so a
frozen VM looks like a hung one: connections open, nothing answers on them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from nmpi_lab_openstack.lab_state import docker_network_subnets

from nmpi_devstack import addresses
from nmpi_devstack.supervisor import LabError

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

CUT_PREFIX = "NMPILAB-CUT"
MAX_CHAIN_NAME = 28
CUT_HOOKS = ("PREROUTING", "OUTPUT")
LAB_LABEL = "nmpi.lab"
REGION_LABEL = "nmpi.lab.region"
NAME_LABEL = "nmpi.lab.instance-name"
UUID_LABEL = "nmpi.lab.instance-uuid"


class ChaosError(LabError):
    """A failure injection that cannot be done (unknown region or server, tool missing).

    A LabError: `nmpi-devstack` prints it as one line and exits 1.
    """


# --- pure: the rules of a cut --------------------------------------------------------------


def cut_chain_names(region: str) -> tuple[str, str, str]:
    """(main, source-inside, source-outside) chain names of a region's cut."""
    base = f"{CUT_PREFIX}-{region}"
    if len(base) + 2 > MAX_CHAIN_NAME or not region.replace("-", "").replace("_", "").isalnum():
        base = f"{CUT_PREFIX}-{hashlib.sha256(region.encode()).hexdigest()[:10]}"
    return base, f"{base}-I", f"{base}-O"


def cut_rules(
    region: str, ranges: Iterable[IPv4Network], host_addresses: Iterable[IPv4Address]
) -> dict[str, list[str]]:
    """Chain -> rules (text after `-A <chain> `) cutting `ranges` off from everything else.

    `host_addresses` are the host's own addresses: those inside the ranges count as outside.
    """
    main, inside, outside = cut_chain_names(region)
    nets = sorted(ipaddress.collapse_addresses(set(ranges)))
    if not nets:
        raise ChaosError(f"region {region}: no address range to cut off")
    hosts = sorted({a for a in host_addresses if any(a in n for n in nets)})
    return {
        # -g (goto): the sub-chain's verdict is final, its RETURN leaves the cut altogether.
        main: [
            *(f"-s {h}/32 -g {outside}" for h in hosts),
            *(f"-s {n} -g {inside}" for n in nets),
            f"-g {outside}",
        ],
        inside: [
            *(f"-d {h}/32 -j DROP" for h in hosts),
            *(f"-d {n} -j RETURN" for n in nets),
            "-j DROP",
        ],
        outside: [
            *(f"-d {h}/32 -j RETURN" for h in hosts),
            *(f"-d {n} -j DROP" for n in nets),
        ],
    }


def raw_chains(save_output: str) -> dict[str, list[str]]:
    """The raw table's chains -> rules, from `iptables-save -t raw` output."""
    chains: dict[str, list[str]] = {}
    in_raw = False
    for line in save_output.splitlines():
        line = line.strip()
        if line.startswith("*"):
            in_raw = line == "*raw"
        elif not in_raw:
            continue
        elif line.startswith(":"):
            chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            _, chain, *rest = line.split(" ", 2)
            chains.setdefault(chain, []).append(rest[0] if rest else "")
    return chains


def cut_restore_text(region: str, rules: dict[str, list[str]], saved: dict[str, list[str]]) -> str:
    """iptables-restore --noflush input installing (or refreshing) a region's cut."""
    main = cut_chain_names(region)[0]
    lines = ["*raw", *(f":{chain} - [0:0]" for chain in rules)]
    for chain, chain_rules in rules.items():
        lines += [f"-A {chain} {rule}" for rule in chain_rules]
    for hook in CUT_HOOKS:
        if not any(rule.strip() == f"-j {main}" for rule in saved.get(hook, [])):
            lines.append(f"-I {hook} 1 -j {main}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def uncut_restore_text(region: str, saved: dict[str, list[str]]) -> str | None:
    """iptables-restore --noflush input removing a region's cut; None if there is none."""
    names = [n for n in cut_chain_names(region) if n in saved]
    main = cut_chain_names(region)[0]
    deletes = [
        f"-D {hook} -j {main}"
        for hook in CUT_HOOKS
        for rule in saved.get(hook, [])
        if rule.strip() == f"-j {main}"
    ]
    if not names and not deletes:
        return None
    lines = ["*raw", *deletes]
    lines += [f"-F {n}" for n in names]
    lines += [f"-X {n}" for n in names]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# --- the machine ----------------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise ChaosError(f"{name} not found (the host's iptables is needed, as root)")
    return found


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    result = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise ChaosError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def _docker() -> Any:
    import docker  # type: ignore[import-untyped]
    import docker.errors  # type: ignore[import-untyped]

    try:
        return docker.from_env()
    except docker.errors.DockerException as exc:
        raise ChaosError(f"Docker is not reachable: {exc}") from exc


def _region(region: str) -> addresses.Region:
    try:
        return addresses.REGIONS[region]
    except KeyError:
        known = ", ".join(sorted(addresses.REGIONS))
        raise ChaosError(f"unknown region {region!r} (the lab's regions: {known})") from None


def region_ranges(region: str) -> list[IPv4Network]:
    """The region's ranges now: its external network and its Docker networks' subnets."""
    spec = _region(region)
    ranges = [spec.external_cidr]
    client = _docker()
    for network in client.api.networks(filters={"label": f"{REGION_LABEL}={region}"}):
        ranges += docker_network_subnets(network)
    for network in client.api.networks(filters={"name": spec.docker_external_network}):
        if network.get("Name") == spec.docker_external_network:
            ranges += docker_network_subnets(network)
    return sorted(ipaddress.collapse_addresses(set(ranges)))


def host_addresses() -> list[IPv4Address]:
    """Every IPv4 address of the host (its network namespace)."""
    found = []
    for link in json.loads(_run(["ip", "-j", "-4", "addr", "show"]) or "[]"):
        for info in link.get("addr_info") or ():
            if info.get("family") == "inet":
                found.append(IPv4Address(str(info["local"])))
    return found


def _saved_raw() -> dict[str, list[str]]:
    return raw_chains(_run([_tool("iptables-save"), "-t", "raw"]))


def cut_region(region: str) -> None:
    """Cut a region off from the host and the other region; traffic inside it still flows."""
    rules = cut_rules(region, region_ranges(region), host_addresses())
    text = cut_restore_text(region, rules, _saved_raw())
    _run([_tool("iptables-restore"), "--noflush"], text)


def restore_region(region: str) -> None:
    """Undo cut_region: remove exactly its chains and the jumps to them."""
    _region(region)
    text = uncut_restore_text(region, _saved_raw())
    if text is not None:
        _run([_tool("iptables-restore"), "--noflush"], text)


def find_instance(server: str) -> Any:
    """The container of a lab instance, by instance name, uuid or container name."""
    client = _docker()
    containers = client.containers.list(all=True, filters={"label": f"{LAB_LABEL}=1"})
    matches = [
        c
        for c in containers
        if server
        in (
            (c.labels or {}).get(NAME_LABEL),
            (c.labels or {}).get(UUID_LABEL),
            c.name,
        )
    ]
    if not matches:
        known = sorted(
            f"{(c.labels or {}).get(NAME_LABEL)} ({(c.labels or {}).get(REGION_LABEL)})"
            for c in containers
        )
        raise ChaosError(
            f"no lab instance named {server!r} or with that id"
            + (f" (instances: {', '.join(known)})" if known else " (the lab has no instances)")
        )
    if len(matches) > 1:
        found = ", ".join(
            f"{(c.labels or {}).get(UUID_LABEL)} in {(c.labels or {}).get(REGION_LABEL)}"
            for c in matches
        )
        raise ChaosError(f"{server!r} names several instances ({found}): give the uuid")
    return matches[0]


def kill_instance(server: str) -> None:
    """Cut the VM's power (docker kill): its processes die at once."""
    container = find_instance(server)
    container.reload()
    if container.status == "paused":
        container.unpause()  # a frozen VM is killed too, not left frozen
    if container.status in ("running", "paused", "restarting"):
        container.kill()


def freeze_instance(server: str) -> None:
    """Freeze every process of the VM (docker pause)."""
    container = find_instance(server)
    container.reload()
    if container.status == "paused":
        return
    if container.status != "running":
        raise ChaosError(f"instance {server!r} is {container.status}, not running")
    container.pause()


def thaw_instance(server: str) -> None:
    """Undo freeze_instance (docker unpause)."""
    container = find_instance(server)
    container.reload()
    if container.status == "paused":
        container.unpause()
