"""nmpi-lab-netagent: the lab's network agent, one process per region.

A level-triggered reconciler. Each round (--interval seconds) it reads the region's Neutron
API (ports and floating IPs every round; security groups with their rules, routers, subnets
and external networks every --full-every rounds, or at once when a port or floating IP
refers to one not read yet), the host's Docker networks and the region's instance
containers, computes the desired rules (lab_state.py, lab_iptables.py) and makes the kernel
hold them:

- on the host: floating IP DNAT/SNAT, router gateway SNAT, and the DOCKER-USER accepts that
  let floating IP and routed flows cross Docker's bridge isolation (see lab_iptables.py);
  conntrack entries of a floating IP whose target changed are deleted, so that traffic
  follows a re-association at once;
- inside each instance container's network namespace: the ingress security group filter
  (mangle PREROUTING -> NMPILAB-SG), checked again every VERIFY_NETNS_EVERY rounds (root
  inside the VM can see and flush it; it comes back);
- on the host side of each instance interface: bridge hairpin mode, so that an instance
  reaches its own floating IP.

Rules are replaced (iptables-restore --noflush, one transaction per table) only when the
kernel does not already hold the desired revision. If Neutron cannot be read, the last
state read stays enforced and the read is retried next round. Every change is logged as
one JSON line on stdout; a `stats` line reports rounds and errors every minute.

Rules are left in place when the agent stops (traffic keeps flowing while it restarts);
`--cleanup` removes the region's host chains.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO

from nmpi_lab_openstack import lab_iptables
from nmpi_lab_openstack.lab_iptables import LabRanges, SavedTable
from nmpi_lab_openstack.lab_state import (
    IPv4Network,
    PortFilter,
    RegionState,
    build_region_state,
    docker_network_subnets,
)

STATS_EVERY = 60.0  # seconds between two `stats` lines
VERIFY_NETNS_EVERY = 10  # rounds between two checks of an unchanged instance's rules
FULL_READ_EVERY = 3  # rounds between two reads of security groups, routers, subnets
COMMAND_TIMEOUT = 20.0
LAB_LABEL = "nmpi.lab"
REGION_LABEL = "nmpi.lab.region"
INSTANCE_LABEL = "nmpi.lab.instance-uuid"
NETWORK_ID_LABEL = "nmpi.lab.network-id"

PORT_FIELDS = [
    "id",
    "device_id",
    "device_owner",
    "fixed_ips",
    "mac_address",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "network_id",
]
FIP_FIELDS = ["id", "floating_ip_address", "fixed_ip_address", "port_id", "floating_network_id"]
SG_FIELDS = ["id", "stateful", "security_group_rules"]
ROUTER_FIELDS = ["id", "external_gateway_info"]
SUBNET_FIELDS = ["id", "network_id", "cidr", "ip_version", "gateway_ip"]


class CommandError(RuntimeError):
    pass


Runner = Callable[[Sequence[str], str | None], str]


def run_command(argv: Sequence[str], stdin: str | None = None) -> str:
    """Run a command; its stdout, or CommandError with its stderr."""
    try:
        result = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandError(f"{argv[0]}: {exc}") from exc
    if result.returncode != 0:
        raise CommandError(
            f"{' '.join(argv[:4])}: exit {result.returncode}: {result.stderr.strip()[:500]}"
        )
    return result.stdout


class JsonLog:
    """One JSON object per line: what changed, what failed, how many rounds ran."""

    def __init__(self, region: str, stream: TextIO = sys.stdout) -> None:
        self.region = region
        self.stream = stream
        self._last_error: dict[str, tuple[str, int]] = {}

    def event(self, event: str, **fields: Any) -> None:
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "agent": "nmpi-lab-netagent",
            "region": self.region,
            "event": event,
            **fields,
        }
        self.stream.write(json.dumps(record, default=str, sort_keys=False) + "\n")
        self.stream.flush()

    def error(self, where: str, message: str) -> None:
        """Log an error, but a repeat of the same one only every 60th time."""
        last, count = self._last_error.get(where, ("", 0))
        if message == last:
            self._last_error[where] = (last, count + 1)
            if (count + 1) % 60:
                return
            self.event("error", where=where, error=message, repeated=count + 1)
            return
        self._last_error[where] = (message, 0)
        self.event("error", where=where, error=message)

    def recovered(self, where: str) -> None:
        if self._last_error.pop(where, None) is not None:
            self.event("recovered", where=where)


class Iptables:
    """iptables-save / iptables-restore on the host or inside a process's network namespace.

    The host's `iptables` alternative is used everywhere: it is the backend Docker uses on
    the host, and the lab image's own Docker engine uses the same (nf_tables) inside.
    """

    def __init__(self, runner: Runner = run_command) -> None:
        self.runner = runner

    @staticmethod
    def _prefix(pid: int | None) -> list[str]:
        return [] if pid is None else ["nsenter", f"--net=/proc/{pid}/ns/net"]

    def save(self, pid: int | None = None, table: str | None = None) -> dict[str, SavedTable]:
        argv = [*self._prefix(pid), "iptables-save"]
        if table:
            argv += ["-t", table]
        return lab_iptables.parse_save(self.runner(argv, None))

    def restore(self, text: str, pid: int | None = None) -> None:
        argv = [*self._prefix(pid), "iptables-restore", "--noflush"]
        for attempt in range(3):
            try:
                self.runner(argv, text)
                return
            except CommandError:
                # A concurrent writer (Docker, the other region's agent) can make an
                # nf_tables transaction fail; the next attempt starts from a fresh table.
                if attempt == 2:
                    raise
                time.sleep(0.1 * (attempt + 1))


@dataclass
class Snapshot:
    """What Neutron listed in one round."""

    ports: list[dict[str, Any]]
    floating_ips: list[dict[str, Any]]
    security_groups: list[dict[str, Any]]
    routers: list[dict[str, Any]]
    subnets: list[dict[str, Any]]
    address_groups: list[dict[str, Any]] = field(default_factory=list)
    external_networks: list[dict[str, Any]] = field(default_factory=list)


class NeutronReader:
    """Lists the region's Neutron resources as plain JSON (one GET per collection)."""

    def __init__(self, cloud: str, region: str, clouds_yaml: str | None) -> None:
        self.cloud, self.region, self.clouds_yaml = cloud, region, clouds_yaml
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            import openstack.config.loader
            import openstack.connection

            files = [self.clouds_yaml] if self.clouds_yaml else None
            config = openstack.config.loader.OpenStackConfig(config_files=files)
            region = config.get_one(cloud=self.cloud, region_name=self.region)
            self._conn = openstack.connection.Connection(config=region)
        return self._conn

    def _list(
        self, path: str, key: str, fields: Sequence[str], filters: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"fields": list(fields), **(filters or {})}
        try:
            response = self._connection().network.get(path, params=params)
        except Exception:
            self._conn = None  # a fresh session next round (catalog, token)
            raise
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status_code}: {response.text[:200]}")
        items = response.json()[key]
        if not isinstance(items, list):
            raise RuntimeError(f"GET {path}: {key} is not a list")
        return items

    def read(self, previous: Snapshot | None = None) -> Snapshot:
        """Ports and floating IPs; the rest too unless `previous` still covers them.

        Every GET costs the region's Neutron a request (~50 ms here): what changes with
        instances and floating IPs is read each round, security groups, routers, subnets
        and external networks only when `previous` is None (the caller's full round) or
        when a port or floating IP refers to one `previous` does not know.
        """
        ports = self._list("/ports", "ports", PORT_FIELDS)
        floating_ips = self._list("/floatingips", "floatingips", FIP_FIELDS)
        if previous is not None and covers(previous, ports, floating_ips):
            return Snapshot(
                ports=ports,
                floating_ips=floating_ips,
                security_groups=previous.security_groups,
                routers=previous.routers,
                subnets=previous.subnets,
                address_groups=previous.address_groups,
                external_networks=previous.external_networks,
            )
        snapshot = Snapshot(
            ports=ports,
            floating_ips=floating_ips,
            security_groups=self._list("/security-groups", "security_groups", SG_FIELDS),
            routers=self._list("/routers", "routers", ROUTER_FIELDS),
            subnets=self._list("/subnets", "subnets", SUBNET_FIELDS),
            external_networks=self._list(
                "/networks", "networks", ["id"], {"router:external": "true"}
            ),
        )
        uses_address_groups = any(
            rule.get("remote_address_group_id")
            for group in snapshot.security_groups
            for rule in group.get("security_group_rules") or ()
        )
        if uses_address_groups:
            snapshot.address_groups = self._list(
                "/address-groups", "address_groups", ["id", "addresses"]
            )
        return snapshot


def _references(
    ports: Sequence[dict[str, Any]], floating_ips: Sequence[dict[str, Any]]
) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for port in ports:
        found.update(("subnet", str(ip.get("subnet_id"))) for ip in port.get("fixed_ips") or ())
        found.update(("group", str(g)) for g in port.get("security_groups") or ())
        if str(port.get("device_owner") or "").startswith("network:router"):
            found.add(("router", str(port.get("device_id"))))
    found.update(("network", str(f.get("floating_network_id"))) for f in floating_ips)
    return found


def covers(
    previous: Snapshot, ports: Sequence[dict[str, Any]], floating_ips: Sequence[dict[str, Any]]
) -> bool:
    """Whether `previous` knows every subnet, group, router and network these refer to.

    A reference `previous` could not resolve either (a group Neutron did not list) does
    not count: reading again would not find it.
    """
    known = {("subnet", str(s.get("id"))) for s in previous.subnets}
    known.update(("group", str(g.get("id"))) for g in previous.security_groups)
    known.update(("router", str(r.get("id"))) for r in previous.routers)
    known.update(("network", str(n.get("id"))) for n in previous.external_networks)
    unresolved = _references(previous.ports, previous.floating_ips) - known
    return not (_references(ports, floating_ips) - known - unresolved)


def lab_ranges(networks: Sequence[dict[str, Any]]) -> LabRanges:
    """The lab's ranges from Docker's networks (name nmpilab-* or label nmpi.lab=1).

    Tenant networks (made by the lab hypervisor) carry nmpi.lab.network-id; the others
    (the services network, each region's external network) are the lab's public ranges.
    """
    every: list[IPv4Network] = []
    public: list[IPv4Network] = []
    for network in networks:
        labels = network.get("Labels") or {}
        name = str(network.get("Name") or "")
        if not (name.startswith("nmpilab-") or labels.get(LAB_LABEL) == "1"):
            continue
        subnets = docker_network_subnets(network)
        every += subnets
        if NETWORK_ID_LABEL not in labels:
            public += subnets
    return LabRanges(all=tuple(sorted(set(every))), public=tuple(sorted(set(public))))


class Link(NamedTuple):
    """An interface inside an instance: name, MAC, IPv4 addresses, host-side peer ifindex."""

    name: str
    mac: str
    addresses: frozenset[str]
    peer: int | None = None


def interfaces(ip_json: str) -> list[Link]:
    """The interfaces of a network namespace, from `ip -j addr show` run inside it."""
    found = []
    for link in json.loads(ip_json or "[]"):
        addresses = frozenset(
            str(a.get("local")) for a in link.get("addr_info") or () if a.get("family") == "inet"
        )
        peer = link.get("link_index")
        found.append(
            Link(
                str(link.get("ifname")),
                str(link.get("address") or "").lower(),
                addresses,
                int(peer) if isinstance(peer, int) else None,
            )
        )
    return found


def match_interfaces(
    ports: Sequence[PortFilter], links: Sequence[Link]
) -> tuple[list[tuple[Link, PortFilter]], list[PortFilter]]:
    """Pair each port with its interface (by fixed IP, else by MAC); and the unmatched ports."""
    pairs, missing = [], []
    for port in ports:
        ips = {str(ip) for ip in port.ips}
        link = next((k for k in links if ips & k.addresses), None)
        if link is None and port.mac:
            link = next((k for k in links if k.mac == port.mac), None)
        if link is None:
            missing.append(port)
        else:
            pairs.append((link, port))
    return pairs, missing


def set_hairpin(ifindex: int, sys_class_net: str = "/sys/class/net") -> str | None:
    """Let the bridge send frames back out of this host port; the port's name if changed.

    An instance reaching its own floating IP is DNATed back to itself: the bridge must
    send the frame out of the port it came in on (what Docker does without its proxy).
    """
    for name in os.listdir(sys_class_net):
        try:
            with open(f"{sys_class_net}/{name}/ifindex") as f:
                if int(f.read().strip()) != ifindex:
                    continue
            path = f"{sys_class_net}/{name}/brport/hairpin_mode"
            with open(path) as f:
                if f.read().strip() == "1":
                    return None
            with open(path, "w") as f:
                f.write("1")
            return name
        except (OSError, ValueError):
            continue
    return None


@dataclass
class InstanceCache:
    pid: int
    netns_inode: int
    links: list[Link] | None = None
    revision: str = ""
    checked_round: int = -(10**9)


class NetAgent:
    def __init__(
        self,
        region: str,
        neutron: Any,
        docker_client: Any,
        *,
        iptables: Iptables | None = None,
        runner: Runner = run_command,
        log: JsonLog | None = None,
        full_every: int = FULL_READ_EVERY,
    ) -> None:
        self.region = region
        self.full_every = max(1, full_every)
        self.snapshot: Snapshot | None = None
        self.neutron = neutron
        self.docker = docker_client
        self.runner = runner
        self.iptables = iptables or Iptables(runner)
        self.log = log or JsonLog(region)
        self.state: RegionState | None = None
        self.rounds = 0
        self.errors = 0
        self.applies = 0
        self.instances: dict[str, InstanceCache] = {}
        self.has_conntrack = shutil.which("conntrack") is not None
        self._problems: set[str] = set()

    # --- one round ------------------------------------------------------------------------

    def round(self) -> int:
        """One reconciliation round; the number of errors it met."""
        self.rounds += 1
        errors = 0
        try:
            self._read_neutron()
            self.log.recovered("neutron")
        except Exception as exc:
            errors += 1
            self.log.error("neutron", f"{type(exc).__name__}: {exc}")
        if self.state is None:
            self.errors += errors
            return errors  # nothing read yet: leave whatever the kernel holds
        try:
            networks = self.docker.api.networks()
            containers = self.docker.api.containers(
                filters={"label": [f"{LAB_LABEL}=1", f"{REGION_LABEL}={self.region}"]}
            )
            self.log.recovered("docker")
        except Exception as exc:
            self.errors += errors + 1
            self.log.error("docker", f"{type(exc).__name__}: {exc}")
            return errors + 1
        try:
            self._enforce_host(lab_ranges(networks))
            self.log.recovered("host")
        except Exception as exc:
            errors += 1
            self.log.error("host", f"{type(exc).__name__}: {exc}")
        errors += self._enforce_instances(containers)
        self.errors += errors
        return errors

    def _read_neutron(self) -> None:
        full = self.snapshot is None or self.rounds % self.full_every == 0
        snapshot = self.neutron.read(None if full else self.snapshot)
        self.snapshot = snapshot
        problems: list[str] = []
        state = build_region_state(
            self.region,
            ports=snapshot.ports,
            floating_ips=snapshot.floating_ips,
            security_groups=snapshot.security_groups,
            routers=snapshot.routers,
            subnets=snapshot.subnets,
            address_groups=snapshot.address_groups,
            external_network_ids=[str(n["id"]) for n in snapshot.external_networks],
            problems=problems,
        )
        for problem in sorted(set(problems) - self._problems):
            self.log.event("left_out", detail=problem)
        self._problems = set(problems)
        if state != self.state:
            self._log_state_change(self.state, state)
        self.state = state

    def _log_state_change(self, old: RegionState | None, new: RegionState) -> None:
        before = {str(f.address): str(f.fixed_ip) for f in old.floating_ips} if old else {}
        after = {str(f.address): str(f.fixed_ip) for f in new.floating_ips}
        for address in lab_iptables.moved_floating_ips(before, after):
            self.log.event(
                "floating_ip", address=address, was=before.get(address), now=after.get(address)
            )

    # --- host rules -------------------------------------------------------------------------

    def _enforce_host(self, lab: LabRanges) -> None:
        assert self.state is not None
        specs = lab_iptables.host_tables(self.state, lab)
        saved = self.iptables.save()
        for spec in specs:
            current = saved.get(spec.table)
            if lab_iptables.in_sync(spec, current):
                continue
            dnat = lab_iptables.region_chains(self.region)["DNAT"]
            before = lab_iptables.dnat_map(current.chains.get(dnat, [])) if current else {}
            self.iptables.restore(lab_iptables.restore_text(spec, current))
            self.applies += 1
            self.log.event(
                "host_rules",
                table=spec.table,
                revision=spec.revision,
                rules=sum(len(c.rules) for c in spec.chains),
            )
            if spec.table == "nat":
                after = lab_iptables.dnat_map(spec.chain(dnat).rules)
                self._forget_flows(lab_iptables.moved_floating_ips(before, after))

    def _forget_flows(self, addresses: Sequence[str]) -> None:
        """Delete conntrack entries to/from floating IPs whose target changed."""
        if not addresses:
            return
        if not self.has_conntrack:
            self.log.event("conntrack_missing", addresses=list(addresses))
            return
        for address in addresses:
            for selector in ("--orig-dst", "--reply-dst"):
                # (exit 1 when there was nothing to delete)
                with contextlib.suppress(CommandError):
                    self.runner(["conntrack", "-D", selector, address], None)
        self.log.event("conntrack_flushed", addresses=list(addresses))

    # --- instance filters -------------------------------------------------------------------

    def _instance(self, container: dict[str, Any]) -> InstanceCache | None:
        cid = str(container["Id"])
        cached = self.instances.get(cid)
        if cached is not None:
            try:
                if os.stat(f"/proc/{cached.pid}/ns/net").st_ino == cached.netns_inode:
                    return cached
            except OSError:
                pass
        pid = int(self.docker.api.inspect_container(cid)["State"]["Pid"] or 0)
        if pid <= 0:
            return None
        cached = InstanceCache(pid=pid, netns_inode=os.stat(f"/proc/{pid}/ns/net").st_ino)
        self.instances[cid] = cached
        return cached

    def _enforce_instances(self, containers: Sequence[dict[str, Any]]) -> int:
        assert self.state is not None
        errors = 0
        seen = set()
        for container in containers:
            if container.get("State") not in ("running", "paused"):
                continue
            cid = str(container["Id"])
            seen.add(cid)
            uuid = str((container.get("Labels") or {}).get(INSTANCE_LABEL, ""))
            try:
                self._enforce_instance(container, uuid)
                self.log.recovered(f"instance {uuid}")
            except Exception as exc:
                errors += 1
                self.instances.pop(cid, None)
                self.log.error(f"instance {uuid}", f"{type(exc).__name__}: {exc}")
        for gone in set(self.instances) - seen:
            del self.instances[gone]
        return errors

    def _enforce_instance(self, container: dict[str, Any], uuid: str) -> None:
        assert self.state is not None
        instance = self._instance(container)
        if instance is None:
            return
        ports = self.state.ports_of(uuid)
        if instance.links is None:
            instance.links = self._links(instance.pid)
        pairs, missing = match_interfaces(ports, instance.links)
        if missing:  # an interface plugged since the last look: look again
            instance.links = self._links(instance.pid)
            pairs, missing = match_interfaces(ports, instance.links)
        spec = lab_iptables.port_filter_table([(link.name, port) for link, port in pairs])
        fresh = self.rounds - instance.checked_round < VERIFY_NETNS_EVERY
        if spec.revision == instance.revision and fresh:
            return
        for link, _port in pairs:
            if link.peer is not None and (changed := set_hairpin(link.peer)):
                self.log.event("hairpin", instance=uuid, interface=link.name, host_port=changed)
        saved = self.iptables.save(pid=instance.pid, table="mangle").get("mangle")
        if not lab_iptables.in_sync(spec, saved):
            self.iptables.restore(lab_iptables.restore_text(spec, saved), pid=instance.pid)
            self.applies += 1
            self.log.event(
                "instance_filter",
                instance=uuid,
                container=str(container["Id"])[:12],
                revision=spec.revision,
                interfaces={link.name: port.port_id for link, port in pairs},
                filtered=[link.name for link, port in pairs if port.enabled],
                rules=len(spec.chains[0].rules),
                unplugged=[p.port_id for p in missing],
            )
        instance.revision = spec.revision
        instance.checked_round = self.rounds

    def _links(self, pid: int) -> list[Link]:
        output = self.runner(
            ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "addr", "show"], None
        )
        return interfaces(output)

    # --- cleanup ----------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Remove this region's host chains and the jumps to them."""
        names = lab_iptables.region_chains(self.region)
        saved = self.iptables.save()
        for table, chains in (
            ("nat", [names["DNAT"], names["POST"], names["SNAT"]]),
            ("filter", [names["FWD"]]),
        ):
            text = lab_iptables.removal_text(table, chains, saved.get(table))
            if text:
                self.iptables.restore(text)
                self.log.event("host_rules_removed", table=table, chains=chains)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmpi-lab-netagent",
        description="The lab's network agent: floating IPs, routers and security groups "
        "of one region made real with iptables.",
    )
    parser.add_argument("--region", required=True, help="the OpenStack region to serve")
    parser.add_argument("--cloud", default="lab-admin", help="clouds.yaml entry (admin)")
    parser.add_argument("--clouds-yaml", help="clouds.yaml path (default: the usual search)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument(
        "--full-every",
        type=int,
        default=FULL_READ_EVERY,
        help="read security groups, routers and subnets every N rounds (ports and floating "
        "IPs: every round)",
    )
    parser.add_argument("--once", action="store_true", help="one round, then exit (1 on errors)")
    parser.add_argument(
        "--cleanup", action="store_true", help="remove this region's host rules and exit"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import docker  # type: ignore[import-untyped]

    log = JsonLog(args.region)
    agent = NetAgent(
        args.region,
        NeutronReader(args.cloud, args.region, args.clouds_yaml),
        docker.from_env(),
        log=log,
        full_every=args.full_every,
    )
    if args.cleanup:
        agent.cleanup()
        return 0
    log.event("start", interval=args.interval, pid=os.getpid(), conntrack=agent.has_conntrack)
    if args.once:
        return 1 if agent.round() else 0

    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    last_stats = time.monotonic()
    while not stop.is_set():
        started = time.monotonic()
        try:
            agent.round()
        except Exception as exc:  # never die on a bad round: the next one tries again
            agent.errors += 1
            log.error("round", f"{type(exc).__name__}: {exc}")
        now = time.monotonic()
        if now - last_stats >= STATS_EVERY:
            log.event("stats", rounds=agent.rounds, errors=agent.errors, applies=agent.applies)
            last_stats = now
        stop.wait(max(0.0, args.interval - (time.monotonic() - started)))
    log.event("stop", rounds=agent.rounds, errors=agent.errors, applies=agent.applies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
