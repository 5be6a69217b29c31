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
nmpi.lab.instance-uuid) or container name.

Freezing makes the VM look hung: every process of the VM stops, the containers its own
Docker engine runs included (Patroni runs in one), while its kernel (the host's, shared)
still answers pings and TCP handshakes: connections open, nothing answers on them.
`docker pause` alone is not enough. The VM sees the host's cgroup tree (it is mounted into
it), so its inner engine makes its containers' cgroups beside the VM's, not inside it
(freezer:/docker/<vm id> and freezer:/docker/<inner id>), and pausing the VM freezes only
the first. So freeze_instance

  1. pauses the VM container with `docker pause` (kept rather than writing its freezer
     directly: Docker, the lab's Nova driver and so Nova see the instance paused, and
     `docker kill`/`unpause` keep working on it), which freezes the VM's own cgroup;
  2. finds every process of the VM: its init (docker inspect State.Pid), every process in
     its cgroup (`docker exec` ones too) and all their descendants, by parent pid in /proc
     (the inner containers' processes descend from the VM's init through containerd's shims);
  3. freezes each freezer cgroup of those processes outside the VM's own one (freezer.state
     FROZEN on cgroup v1, cgroup.freeze 1 on v2; each is waited for until it reads frozen),
     and scans again until a scan finds nothing new. It refuses (ChaosError, before touching
     anything) the root cgroup and any cgroup that also holds a process outside the VM.

The inner cgroups it froze are written to STATE_DIR/<container id>.json before each is
frozen, so `thaw` (another process, later) thaws exactly those, then unpauses the VM; an
inner container paused by the VM's own engine stays paused. Freezing and thawing twice is
harmless. Thaw a frozen VM before anything else stops or deletes it (Nova's stop, delete):
Docker unpauses its container first, but not the inner cgroups, and their processes, which
cannot die frozen, would hang the VM's shutdown.

Killing is `docker kill` (the VM's power is cut; Nova sees it shut off). The kernel then
kills every process of the VM's PID namespace, the nested namespaces of its inner
containers included (test_lab_freeze.py checks it), but not a process in a frozen cgroup:
it would never die, and the VM's init would wait for it forever (Docker's kill then times
out). So a frozen VM's processes get their SIGKILL while still frozen, the inner cgroups are
thawed (they die as they thaw, running nothing first), then `docker kill` (Docker resumes a
paused container after signalling it). kill_instance checks that no process of the VM
survives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
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
# Which inner cgroups a freeze froze, per VM container (tmpfs: gone with the host's boot).
STATE_DIR = Path("/run/nmpi-devstack/frozen")
FREEZE_TIMEOUT = 10.0  # seconds for a cgroup to read frozen (or thawed)
FREEZE_ROUNDS = 5  # scans for new inner cgroups before giving up
KILL_TIMEOUT = 30.0  # seconds for a killed VM's container to exit
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


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


# --- pure: which cgroups freeze a VM -------------------------------------------------------


@dataclasses.dataclass(frozen=True, order=True)
class Cgroup:
    """A freezer cgroup: version 1 (the freezer hierarchy) or 2 (the unified one), its path."""

    version: int
    path: str


@dataclasses.dataclass(frozen=True)
class Proc:
    """One process of /proc: start (clock ticks after boot) tells a reused pid apart."""

    pid: int
    ppid: int
    start: int
    comm: str
    cgroup: Cgroup | None


@dataclasses.dataclass(frozen=True)
class FreezePlan:
    """What freezes a VM: its own cgroup (docker pause) and the inner ones (written directly)."""

    own: Cgroup
    inner: tuple[Cgroup, ...]
    pids: frozenset[int]


def freezer_cgroup(text: str) -> Cgroup | None:
    """A process's freezer cgroup from /proc/<pid>/cgroup text; None if it has none.

    The v1 freezer hierarchy's line wins (a hybrid host lists the unified one too); without
    it, the unified hierarchy's `0::` line (cgroup v2, where freezing is cgroup.freeze).
    """
    unified = None
    for line in text.splitlines():
        hierarchy, sep, rest = line.partition(":")
        controllers, sep2, path = rest.partition(":")
        if not sep or not sep2 or not path:
            continue
        if "freezer" in controllers.split(","):
            return Cgroup(1, path)
        if hierarchy == "0" and controllers == "":
            unified = Cgroup(2, path)
    return unified


def parse_stat(text: str) -> tuple[str, str, int, int]:
    """(comm, state, ppid, start time) from /proc/<pid>/stat text (comm may hold anything)."""
    head, _, tail = text.rpartition(")")
    comm = head.partition("(")[2]
    fields = tail.split()
    # After comm: state(3) ppid(4) ... starttime(22), i.e. fields[0], [1] and [19].
    return comm, fields[0], int(fields[1]), int(fields[19])


def cgroup_within(path: str, ancestor: str) -> bool:
    """Whether cgroup path is ancestor or inside it."""
    ancestor = ancestor.rstrip("/")
    return path == ancestor or path.startswith(ancestor + "/") or ancestor == ""


def vm_pids(table: Mapping[int, Proc], init_pid: int) -> frozenset[int]:
    """The VM's processes: its init, every process in its init's cgroup (`docker exec` ones,
    whose parent is outside) and all their descendants (its inner containers' processes)."""
    init = table.get(init_pid)
    if init is None:
        raise ChaosError(f"the VM's init (pid {init_pid}) is gone")
    roots = {init_pid}
    own = init.cgroup
    if own is not None and own.path != "/":
        roots |= {
            p.pid
            for p in table.values()
            if p.cgroup is not None
            and p.cgroup.version == own.version
            and cgroup_within(p.cgroup.path, own.path)
        }
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack += children.get(pid, [])
    return frozenset(found)


def outermost(cgroups: Iterable[Cgroup]) -> tuple[Cgroup, ...]:
    """The cgroups not inside another one given (freezing is hierarchical), sorted."""
    given = set(cgroups)
    return tuple(
        sorted(
            c
            for c in given
            if not any(
                o != c and o.version == c.version and cgroup_within(c.path, o.path) for o in given
            )
        )
    )


def freeze_plan(table: Mapping[int, Proc], init_pid: int) -> FreezePlan:
    """The cgroups to freeze for the VM whose init is init_pid, from a process table.

    Refuses the root cgroup, a VM process without a freezer cgroup, and a cgroup (or one
    inside it) that also holds a process outside the VM: freezing it would hang that too.
    """
    pids = vm_pids(table, init_pid)
    own = table[init_pid].cgroup
    if own is None:
        raise ChaosError(f"the VM's init (pid {init_pid}) has no freezer cgroup")
    if own.path.rstrip("/") == "":
        raise ChaosError(f"the VM's init (pid {init_pid}) is in the root cgroup: not freezing it")
    found = set()
    for pid in sorted(pids):
        proc = table[pid]
        if proc.cgroup is None:
            raise ChaosError(f"process {pid} ({proc.comm}) of the VM has no freezer cgroup")
        if proc.cgroup.version == own.version and cgroup_within(proc.cgroup.path, own.path):
            continue
        found.add(proc.cgroup)
    inner = outermost(found)
    for cgroup in inner:
        if cgroup.path.rstrip("/") == "":
            at_root = ", ".join(
                f"{pid} ({table[pid].comm})" for pid in sorted(pids) if table[pid].cgroup == cgroup
            )
            raise ChaosError(
                f"a process of the VM is in the root cgroup ({at_root}): freezing it would"
                " freeze the host"
            )
        outsiders = sorted(
            p.pid
            for p in table.values()
            if p.pid not in pids
            and p.cgroup is not None
            and p.cgroup.version == cgroup.version
            and cgroup_within(p.cgroup.path, cgroup.path)
        )
        if outsiders:
            named = ", ".join(f"{pid} ({table[pid].comm})" for pid in outsiders[:5])
            raise ChaosError(
                f"cgroup {cgroup.path} holds processes of the VM and processes outside it"
                f" ({named}): not freezing it"
            )
    return FreezePlan(own, inner, pids)


def cgroup_mounts(mountinfo: str) -> dict[int, tuple[str, str]]:
    """Version -> (root in the hierarchy, mount point) of the freezer's cgroup mounts, from
    /proc/self/mountinfo text: the v1 freezer hierarchy (1) and the unified one (2)."""
    found: dict[int, tuple[str, str]] = {}
    for line in mountinfo.splitlines():
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        fstype, options = tail[0], tail[2].split(",")
        version = 1 if fstype == "cgroup" and "freezer" in options else 0
        version = 2 if fstype == "cgroup2" else version
        root, mountpoint = (_unescape(f) for f in fields[3:5])
        if version and (version not in found or (root == "/" and found[version][0] != "/")):
            found[version] = (root, mountpoint)
    return found


def _unescape(field: str) -> str:
    r"""mountinfo's octal escapes (\040 for a space, \134 for a backslash...)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def cgroup_dir(cgroup: Cgroup, mounts: Mapping[int, tuple[str, str]]) -> Path:
    """The directory of a cgroup, given the mounts of cgroup_mounts."""
    if cgroup.version not in mounts:
        what = "the v1 freezer hierarchy" if cgroup.version == 1 else "cgroup2 (unified)"
        raise ChaosError(f"{what} is not mounted here: cannot freeze {cgroup.path}")
    root, mountpoint = mounts[cgroup.version]
    if not cgroup_within(cgroup.path, root):
        raise ChaosError(f"cgroup {cgroup.path} is outside the mounted {root} ({mountpoint})")
    relative = cgroup.path[len(root.rstrip("/")) :].strip("/")
    return Path(mountpoint) / relative if relative else Path(mountpoint)


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


# --- freezing on the machine -----------------------------------------------------------------


def process_table(proc: Path = Path("/proc")) -> dict[int, Proc]:
    """Every process now: pid -> Proc (one that exits meanwhile is left out)."""
    table: dict[int, Proc] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            comm, _, ppid, start = parse_stat((proc / entry.name / "stat").read_text())
            cgroup = freezer_cgroup((proc / entry.name / "cgroup").read_text())
        except (OSError, ValueError, IndexError):
            continue
        table[int(entry.name)] = Proc(int(entry.name), ppid, start, comm, cgroup)
    return table


def _mounts() -> dict[int, tuple[str, str]]:
    return cgroup_mounts(Path("/proc/self/mountinfo").read_text())


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ChaosError(f"cannot read {path}: {exc}") from exc


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise ChaosError(f"cannot write {value} to {path}: {exc}") from exc


def is_frozen(directory: Path, version: int) -> bool:
    """Whether the cgroup is frozen (v1: FROZEN, or still FREEZING), by itself or a parent."""
    if version == 1:
        return _read(directory / "freezer.state") != "THAWED"
    return "frozen 1" in _read(directory / "cgroup.events").splitlines()


def self_frozen(directory: Path, version: int) -> bool:
    """Whether the cgroup itself was asked to freeze (not only a parent of it)."""
    if version == 1:
        own = directory / "freezer.self_freezing"
        if own.exists():
            return _read(own) == "1"
        return _read(directory / "freezer.state") != "THAWED"
    return _read(directory / "cgroup.freeze") == "1"


def set_frozen(
    directory: Path, version: int, frozen: bool, timeout: float = FREEZE_TIMEOUT
) -> None:
    """Freeze or thaw one cgroup and wait until it reads so (v1 freezer.state, v2 cgroup.freeze)."""
    if version == 1:
        target, value = ("FROZEN", "FROZEN") if frozen else ("THAWED", "THAWED")
        control, status = directory / "freezer.state", directory / "freezer.state"
    else:
        target, value = ("frozen 1", "1") if frozen else ("frozen 0", "0")
        control, status = directory / "cgroup.freeze", directory / "cgroup.events"
    deadline = time.monotonic() + timeout
    while True:
        # Written again at every poll: a v1 cgroup may stay FREEZING until told again.
        _write(control, value)
        text = _read(status)
        if target == text or target in text.splitlines():
            return
        if time.monotonic() > deadline:
            raise ChaosError(f"{directory} did not become {target!r} in {timeout:.0f}s: {text!r}")
        time.sleep(0.01)


def _record(container_id: str) -> Path:
    return STATE_DIR / f"{container_id}.json"


def frozen_record(container_id: str) -> list[tuple[int, Path]]:
    """The inner cgroups (version, directory) a freeze of the container froze; [] if none."""
    try:
        data = json.loads(_record(container_id).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ChaosError(f"cannot read {_record(container_id)}: {exc}") from exc
    return [(int(item["version"]), Path(item["dir"])) for item in data.get("cgroups", [])]


def _write_record(container_id: str, cgroups: Sequence[tuple[int, Path]]) -> None:
    path = _record(container_id)
    if not cgroups:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"cgroups": [{"version": v, "dir": str(d)} for v, d in cgroups]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def _init_pid(container: Any) -> int:
    return int((container.attrs.get("State") or {}).get("Pid") or 0)


PLAN_TRIES = 50
PLAN_RETRY_SECONDS = 0.2


def _settled_plan(init_pid: int) -> FreezePlan:
    """freeze_plan on a fresh process table, asked again for up to 10 s while it refuses: a
    process being started in the VM (runc moving a new container's, a health check's or a
    `docker exec`'s process into its cgroup) can be seen for a moment in the root cgroup or in
    none. On two loaded cores that moment outlasted 2 s (make test, twice); a refusal that
    lasts 10 s is real, and the error names the processes."""
    for attempt in range(PLAN_TRIES):
        try:
            return freeze_plan(process_table(), init_pid)
        except ChaosError:
            if attempt == PLAN_TRIES - 1:
                raise
            time.sleep(PLAN_RETRY_SECONDS)
    raise AssertionError("unreachable")


def _freeze_inner(container_id: str, init_pid: int, mounts: Mapping[int, tuple[str, str]]) -> None:
    """Freeze the VM's cgroups outside its own, scanning again until nothing new appears.

    Each is recorded before it is frozen (so a thaw finds it even if this process dies); an
    inner cgroup frozen by someone else (the VM's engine pausing a container) is left out.
    """
    record = frozen_record(container_id)
    for _ in range(FREEZE_ROUNDS):
        plan = _settled_plan(init_pid)
        own_dir = cgroup_dir(plan.own, mounts)
        if not is_frozen(own_dir, plan.own.version):
            raise ChaosError(f"the VM's own cgroup {own_dir} is not frozen after docker pause")
        new = False
        for cgroup in plan.inner:
            directory = cgroup_dir(cgroup, mounts)
            if (cgroup.version, directory) not in record:
                if self_frozen(directory, cgroup.version):
                    continue  # frozen by someone else: theirs to thaw
                record.append((cgroup.version, directory))
                _write_record(container_id, record)
                new = True
            set_frozen(directory, cgroup.version, True)
        if not new:
            return
    raise ChaosError(f"new cgroups kept appearing in the VM after {FREEZE_ROUNDS} scans")


def _thaw_recorded(container_id: str) -> None:
    for version, directory in frozen_record(container_id):
        if directory.is_dir():
            set_frozen(directory, version, False)
    _write_record(container_id, [])


def freeze_instance(server: str) -> None:
    """Freeze every process of the VM, its inner containers' too (see the module docstring)."""
    container = find_instance(server)
    container.reload()
    if container.status not in ("running", "paused"):
        raise ChaosError(f"instance {server!r} is {container.status}, not running")
    init_pid = _init_pid(container)
    mounts = _mounts()
    _settled_plan(init_pid)  # refuses before anything is frozen
    before = frozen_record(container.id)
    paused_here = False
    try:
        if container.status == "running":
            container.pause()
            paused_here = True
        _freeze_inner(container.id, init_pid, mounts)
    except BaseException:
        # Undo this call's part: what an earlier freeze froze stays frozen.
        with contextlib.suppress(Exception):
            for version, directory in frozen_record(container.id):
                if (version, directory) not in before and directory.is_dir():
                    set_frozen(directory, version, False)
            _write_record(container.id, before)
        if paused_here:
            with contextlib.suppress(Exception):
                container.unpause()
        raise


def thaw_instance(server: str) -> None:
    """Undo freeze_instance: thaw the inner cgroups it froze, then unpause the VM."""
    container = find_instance(server)
    _thaw_recorded(container.id)
    container.reload()
    if container.status == "paused":
        container.unpause()


def _alive(pid: int, start: int) -> bool:
    try:
        _, state, _, started = parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return False
    return started == start and state not in ("Z", "X")


def kill_instance(server: str) -> None:
    """Cut the VM's power (docker kill): its processes die at once, inner containers' too.

    A frozen VM runs nothing more: its processes get SIGKILL while still frozen.
    """
    container = find_instance(server)
    container.reload()
    if container.status not in ("running", "paused", "restarting"):
        _write_record(container.id, [])
        return
    init_pid = _init_pid(container)
    table = process_table()
    victims: dict[int, int] = {}
    if init_pid and init_pid in table:
        victims = {pid: table[pid].start for pid in vm_pids(table, init_pid)}
    mounts = _mounts()
    own = table[init_pid].cgroup if init_pid in table else None
    # Every frozen cgroup of the VM's processes outside its own (ours, or paused by the
    # VM's engine): a process in a frozen cgroup cannot die.
    frozen: list[tuple[int, Path]] = [*frozen_record(container.id)]
    for pid in victims:
        cgroup = table[pid].cgroup
        if cgroup is None or own is None:
            continue
        if cgroup.version == own.version and cgroup_within(cgroup.path, own.path):
            continue
        with contextlib.suppress(ChaosError):
            directory = cgroup_dir(cgroup, mounts)
            if (cgroup.version, directory) not in frozen and self_frozen(directory, cgroup.version):
                frozen.append((cgroup.version, directory))
    if container.status == "paused" or frozen:
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for version, directory in frozen:
        if directory.is_dir():
            set_frozen(directory, version, False)
    _write_record(container.id, [])
    _docker_kill(container)
    survivors = [pid for pid, start in victims.items() if _alive(pid, start)]
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while survivors and time.monotonic() < deadline:
        time.sleep(0.05)
        survivors = [pid for pid in survivors if _alive(pid, victims[pid])]
    if survivors:
        raise ChaosError(f"processes of the killed VM still run: {survivors[:10]}")


def _docker_kill(container: Any) -> None:
    import docker.errors
    import requests

    container.reload()
    if container.status in ("running", "paused", "restarting"):
        with contextlib.suppress(docker.errors.APIError):  # it died meanwhile: fine
            container.kill()
    try:
        container.wait(timeout=KILL_TIMEOUT)
    except (requests.exceptions.RequestException, docker.errors.APIError) as exc:
        raise ChaosError(f"the VM's container did not exit after docker kill: {exc}") from exc
