"""The lab hypervisor's Docker side: an instance is a VM-like container (no OpenStack imports).

How an instance maps to Docker (the contract with the lab's Neutron side, netagent):

- one container per instance, ``nmpilab-<region>-<instance uuid>``, from the project's vm image
  (systemd as PID 1, sshd, a Docker engine inside), run as the lab facts say VM-like containers
  must be (no --privileged: ``--cap-add ALL --cap-drop SYS_RESOURCE``, seccomp and AppArmor
  unconfined, tmpfs /run and /run/lock, the host's /sys/fs/cgroup), with a TTY: its output is
  the instance's console log (systemd's boot messages and the ``nmpi-lab-init:`` lines).
  Labels ``nmpi.lab=1``, ``nmpi.lab.region``, ``nmpi.lab.instance-uuid``,
  ``nmpi.lab.instance-name`` (display name) and ``nmpi.lab.nova-name`` (instance-0000000a).
  Its hostname is the instance's. The anonymous volume of /var/lib/docker goes with it.
- one bridge network per Neutron network, ``nmpilab-<region>-<network id>``, with the Neutron
  subnet's CIDR and gateway (the host holds the gateway address) and the labels
  ``nmpi.lab=1``, ``nmpi.lab.region``, ``nmpi.lab.network-id``, ``nmpi.lab.subnet-id``,
  ``nmpi.lab.cidr``. Made on demand at spawn (and again at a start if it went away), removed
  when its last container goes, stopped ones included (Docker itself would remove a network
  a stopped container is still on). Docker forbids overlapping subnets: a CIDR that overlaps
  a network in use is a clear error (an unused stale instance network in the way is removed).
- each port becomes an interface with the port's fixed IP. Docker 20.10 (API 1.41) honours a
  MAC address only for the network the container is created on (``Config.MacAddress``), not
  on ``docker network connect``, and it picks the default route by network *name* order. The
  guest agent below therefore sets every interface's MAC to the port's and the default route
  via the first port's gateway, at every boot and whenever the driver asks; the interfaces are
  found by their fixed IP. Interface names (eth0, eth1...) follow Docker's order.
- a volume is a file (Cinder's loop-file driver): attaching it runs ``losetup --find --show
  --partscan`` on the host and ``partx -a`` (the lab kernel has no partition-table parsers);
  the guest agent makes ``/dev/vdb`` (the mountpoint Nova chose) with the loop's major:minor,
  root:disk 0660, and ``/dev/vdb1``... for its partitions, kept in step every 0.5 s (a role's
  ``parted`` adds partitions with BLKPG: they appear as 259:N). The container's device cgroup
  allows ``b 7:* rwm`` (loop devices) and ``b 259:* rwm`` (their partitions).
  Systemd ignores fstab entries of block devices inside a container: the guest agent mounts
  them (``mount -a``) at boot, after making the nodes, so a volume in /etc/fstab comes back
  after a reboot as on a VM.

State that must outlive nova-compute comes from Docker and the host, never from memory:
the container and its labels, the files the driver writes into the container (``/etc/nmpi-lab``:
``network`` and ``devices`` records, readable and writable with the container stopped), and
the loop devices' backing files in /sys/block/loop*/loop/backing_file. A record names the loop
device *and* its file: the guest agent makes no node for a loop that now backs something else.

Loop devices outlive containers only by mistake (a crash between two steps): a volume is
released when its instance goes, and ``release_loops_under(<volumes dir>)`` releases what a
lab clean-up would otherwise leak.

The guest agent (``/usr/local/sbin/nmpi-lab-guest``, systemd units nmpi-lab-guest-boot and
nmpi-lab-guest) and the first-boot units nmpi-lab-init/-final (cloud_config.py) are written
into the container before its first start: any systemd image works, nothing is baked in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import errno
import io
import ipaddress
import logging
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import docker.types  # type: ignore[import-untyped]

from nmpi_lab_openstack import cloud_config

LOG = logging.getLogger(__name__)

LABEL = "nmpi.lab"
LABEL_REGION = "nmpi.lab.region"
LABEL_INSTANCE_UUID = "nmpi.lab.instance-uuid"
LABEL_INSTANCE_NAME = "nmpi.lab.instance-name"
LABEL_NOVA_NAME = "nmpi.lab.nova-name"
LABEL_NETWORK_ID = "nmpi.lab.network-id"
LABEL_SUBNET_ID = "nmpi.lab.subnet-id"
LABEL_CIDR = "nmpi.lab.cidr"

# What the lab facts say a VM-like container needs on this host (no --privileged).
CAP_ADD = ("ALL",)
CAP_DROP = ("SYS_RESOURCE",)
SECURITY_OPT = ("seccomp=unconfined", "apparmor=unconfined")
TMPFS = {"/run": "", "/run/lock": ""}
CGROUP_BIND = "/sys/fs/cgroup:/sys/fs/cgroup:rw"
# Loop devices and the partitions of loop devices (block extended major), for volumes.
DEVICE_CGROUP_RULES = ("b 7:* rwm", "b 259:* rwm")
# The kernel announces a changed MAC address (gratuitous ARP) so neighbours update at once.
SYSCTLS = {"net.ipv4.conf.all.arp_notify": "1"}
LOG_CONFIG = {"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}}

GUEST_CONF = "/etc/nmpi-lab"
NETWORK_RECORD = f"{GUEST_CONF}/network"
DEVICES_RECORD = f"{GUEST_CONF}/devices"
GUEST_AGENT = "/usr/local/sbin/nmpi-lab-guest"
INIT_SCRIPT = f"{cloud_config.STATE_DIR}/init.sh"
FINAL_SCRIPT = f"{cloud_config.STATE_DIR}/final.sh"
# systemd in a container exits with 129 on `reboot` (130 on poweroff/halt and docker stop).
REBOOT_EXIT_CODE = 129

_ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>])")
_CR = re.compile(r"\r+\n?")
_LOOP_NAME = re.compile(r"^loop[0-9]+$")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class LabError(Exception):
    """A hypervisor operation failed; the message says what and why."""


class NotFoundError(LabError):
    """The instance has no container."""


class NetworkConflictError(LabError):
    """A Neutron subnet cannot become a Docker network (overlap, mismatch)."""


class DeviceBusyError(LabError):
    """A volume cannot be detached: it is in use (mounted) inside the instance."""


class PowerState(enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"
    CRASHED = "crashed"
    NOSTATE = "nostate"


@dataclasses.dataclass(frozen=True)
class Interface:
    """One port of the instance: the Neutron network, its IPv4 subnet and the port."""

    network_id: str
    subnet_id: str
    cidr: str
    gateway: str | None
    ip: str
    mac: str
    mtu: int | None = None
    dns: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class GuestFile:
    """A file (or symlink, when link is set) written into the container before it starts."""

    path: str
    content: bytes = b""
    mode: int = 0o644
    link: str | None = None


@dataclasses.dataclass(frozen=True)
class VMSpec:
    instance_uuid: str
    display_name: str
    nova_name: str
    hostname: str
    image: str
    interfaces: tuple[Interface, ...]
    files: tuple[GuestFile, ...] = ()
    memory_mb: int | None = None
    vcpus: int | None = None


@dataclasses.dataclass(frozen=True)
class BlockDevice:
    """A volume of the instance: the node inside (mountpoint), the host loop device, the file."""

    mountpoint: str
    loop: str  # "loop3"
    file: str


@dataclasses.dataclass(frozen=True)
class VMEvent:
    """A Docker event of one of the region's instance containers."""

    action: str  # start, die, pause, unpause, destroy
    instance_uuid: str
    exit_code: int | None


# ---------------------------------------------------------------------------------------------
# host side: loop devices


def _tool(name: str) -> str:
    """A host tool by absolute path: services may run with a PATH without the sbin folders."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if found is None:
        raise LabError(f"{name} is not installed on this host (util-linux)")
    return found


def _run(argv: Sequence[str], timeout: float = 60) -> str:
    try:
        done = subprocess.run(
            [_tool(argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def loop_backing_file(loop: str) -> str | None:
    """The file behind /dev/<loop>, or None when the loop device is free (or not a loop)."""
    if not _LOOP_NAME.match(loop):
        return None
    try:
        text = Path(f"/sys/block/{loop}/loop/backing_file").read_text()
    except OSError:
        return None
    return text.rstrip("\n")


def loops_of(file: str) -> list[str]:
    """The loop devices that hold file (normally none or one)."""
    wanted = os.path.realpath(file)
    found = []
    for entry in sorted(Path("/sys/block").glob("loop*")):
        backing = loop_backing_file(entry.name)
        if backing is not None and backing in (file, wanted):
            found.append(entry.name)
    return found


def loop_attach(file: str) -> str:
    """A new loop device for file (with partitions added): its name, e.g. loop3."""
    path = os.path.realpath(file)
    if not os.path.isfile(path):
        raise LabError(f"volume file {path} does not exist")
    device = _run(["losetup", "--find", "--show", "--partscan", path]).strip()
    loop = os.path.basename(device)
    # The lab kernel may have no partition-table parsers: let userspace read the table.
    with contextlib.suppress(LabError):
        _run(["partx", "--add", device])
    LOG.info("volume %s attached as %s", path, device)
    return loop


def loop_in_use(loop: str) -> bool:
    """Whether something holds /dev/<loop> or a partition of it (a mount, anywhere)."""
    try:
        fd = os.open(f"/dev/{loop}", os.O_RDONLY | os.O_EXCL)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return True
        raise LabError(f"cannot check /dev/{loop}: {exc}") from exc
    os.close(fd)
    return False


def loop_detach(loop: str, file: str | None = None) -> None:
    """Release /dev/<loop>, if it still backs file (when given). Idempotent."""
    backing = loop_backing_file(loop)
    if backing is None:
        return
    if file is not None and backing not in (file, os.path.realpath(file)):
        LOG.warning("not detaching /dev/%s: it backs %s, not %s", loop, backing, file)
        return
    with contextlib.suppress(LabError):
        _run(["partx", "--delete", f"/dev/{loop}"])
    _run(["losetup", "--detach", f"/dev/{loop}"])
    LOG.info("volume %s released from /dev/%s", backing, loop)


def release_loops_under(folder: str) -> list[str]:
    """Detach every loop device whose file is in folder (e.g. a lab's volumes, at clean-up).

    Returns the loop devices released; one still mounted somewhere is left (and logged).
    """
    root = os.path.realpath(folder).rstrip("/") + "/"
    released = []
    for entry in sorted(Path("/sys/block").glob("loop*")):
        backing = loop_backing_file(entry.name)
        if backing is None or not backing.startswith(root):
            continue
        if loop_in_use(entry.name):
            LOG.warning("/dev/%s (%s) is still mounted: not released", entry.name, backing)
            continue
        try:
            loop_detach(entry.name)
        except LabError as exc:
            LOG.warning("cannot release /dev/%s: %s", entry.name, exc)
            continue
        released.append(entry.name)
    return released


def loop_refresh_capacity(file: str) -> None:
    """After the file grew (volume extend): make its loop devices see the new size."""
    for loop in loops_of(file):
        _run(["losetup", "--set-capacity", f"/dev/{loop}"])


# ---------------------------------------------------------------------------------------------
# the guest agent and the units written into every instance

GUEST_AGENT_SCRIPT = r"""#!/bin/sh
# nmpi-lab-guest: the lab hypervisor's agent inside an instance (written by the Nova driver,
# see nmpi_lab_openstack/docker_vm.py). It makes the container look like a VM again:
#  - every interface gets its Neutron port's MAC address (Docker sets it for one network
#    only) and the default route goes via the first port's gateway (Docker picks by name);
#  - volumes (loop devices of the host) get the device nodes Nova named (/dev/vdb, and
#    /dev/vdb1... for partitions), from the records the driver writes in /etc/nmpi-lab.
# Usage: nmpi-lab-guest boot|sync|watch
#   boot   every boot, before local-fs.target: sync, then mount what /etc/fstab lists
#          (systemd ignores fstab entries of block devices in a container)
#   sync   interfaces, hostname and device nodes, once (the driver runs it after changes)
#   watch  keep device nodes in step every 0.5 s (partitions made inside the guest)
set -u
CONF=/etc/nmpi-lab
STATE=/run/nmpi-lab
say() { printf 'nmpi-lab-guest: %s\n' "$*"; }
mkdir -p "$STATE"

sync_network() {
  [ -r "$CONF/network" ] || return 0
  while read -r kind ip mac gw first; do
    [ "$kind" = iface ] || continue
    set -- $(ip -o -4 addr show to "$ip/32" 2>/dev/null)
    dev=${2:-}
    if [ -z "$dev" ]; then say "WARNING: no interface has address $ip"; continue; fi
    read -r current < "/sys/class/net/$dev/address"
    if [ "$current" != "$mac" ]; then
      if ip link set dev "$dev" address "$mac"; then
        say "$dev ($ip): MAC address $mac"
        [ "$gw" = - ] || (ping -c 1 -W 1 "$gw" >/dev/null 2>&1 &)
      else
        say "WARNING: $dev: cannot set MAC address $mac"
      fi
    fi
    if [ "$first" = yes ] && [ "$gw" != - ]; then
      set -- $(ip -4 route show default)
      if [ "${3:-}" != "$gw" ] || [ "${5:-}" != "$dev" ]; then
        ip route replace default via "$gw" dev "$dev" && say "default route via $gw ($dev)"
      fi
    fi
  done < "$CONF/network"
}

sync_hostname() {
  [ -s "$CONF/hostname" ] || return 0
  read -r name < "$CONF/hostname"
  [ "$(hostname)" = "$name" ] || hostname "$name"
  printf '%s\n' "$name" > /etc/hostname
  fqdn=
  [ -s "$CONF/fqdn" ] && read -r fqdn < "$CONF/fqdn"
  line="127.0.1.1 ${fqdn:+$fqdn }$name"
  grep -qxF "$line" /etc/hosts || printf '%s\n' "$line" >> /etc/hosts
}

# node NAME SYSFS-DEV-FILE: make /dev node NAME for the device, if missing or different
node() {
  read -r mm < "$2" || return 0
  want="$want $1"
  if [ -b "$1" ]; then
    [ "$(stat -c %Hr:%Lr "$1")" = "$mm" ] && return 0
    rm -f "$1"
  fi
  if mknod -m 0660 "$1" b "${mm%:*}" "${mm#*:}" && chgrp disk "$1"; then
    say "$1: block device $mm"
  fi
}

sync_devices() {
  want=
  notes=
  if [ -r "$CONF/devices" ]; then
    while read -r name loop file; do
      case "$name" in /dev/*) ;; *) continue ;; esac
      sys=/sys/block/$loop
      backing=
      [ -r "$sys/loop/backing_file" ] && read -r backing < "$sys/loop/backing_file"
      if [ "$backing" != "$file" ]; then
        notes="$notes$name:$loop "
        continue
      fi
      node "$name" "$sys/dev"
      for part in "$sys/$loop"p*; do
        [ -r "$part/dev" ] && node "$name${part##*p}" "$part/dev"
      done
    done < "$CONF/devices"
  fi
  old_notes=
  [ -r "$STATE/notes" ] && read -r old_notes < "$STATE/notes"
  if [ "$notes" != "$old_notes" ]; then
    for n in $notes; do
      say "WARNING: ${n%%:*}: /dev/${n#*:} does not hold its volume any more; no node"
    done
    printf '%s\n' "$notes" > "$STATE/notes"
  fi
  made=
  [ -r "$STATE/nodes" ] && read -r made < "$STATE/nodes"
  for old in $made; do
    case " $want " in *" $old "*) ;; *) rm -f "$old" && say "$old: removed" ;; esac
  done
  printf '%s\n' "$want" > "$STATE/nodes"
}

locked() {
  exec 9> "$STATE/lock"
  flock 9
  "$@"
  exec 9>&-
}

# any volume recorded or any node made? (builtins only: the watch loop runs twice a second)
has_devices() {
  made=
  [ -r "$STATE/nodes" ] && read -r made < "$STATE/nodes"
  [ -n "$made" ] && return 0
  [ -r "$CONF/devices" ] || return 1
  while read -r name _; do
    case "$name" in /dev/*) return 0 ;; esac
  done < "$CONF/devices"
  return 1
}

case "${1:-}" in
  boot)
    locked sync_network
    locked sync_hostname
    locked sync_devices
    if has_devices; then
      mount -a -O no_netdev 2>&1 | sed 's/^/nmpi-lab-guest: mount: /'
    fi
    ;;
  sync)
    locked sync_network
    locked sync_hostname
    locked sync_devices
    ;;
  watch)
    while :; do
      if has_devices; then locked sync_devices; fi
      sleep 0.5
    done
    ;;
  *)
    echo "usage: nmpi-lab-guest boot|sync|watch" >&2
    exit 2
    ;;
esac
"""

UNIT_GUEST_BOOT = """[Unit]
Description=nmpi-lab guest: interfaces and volumes
DefaultDependencies=no
Before=local-fs.target sysinit.target network-pre.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/nmpi-lab-guest boot
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=sysinit.target
"""

UNIT_GUEST_WATCH = """[Unit]
Description=nmpi-lab guest: volume device nodes
DefaultDependencies=no
After=nmpi-lab-guest-boot.service
Conflicts=shutdown.target
Before=shutdown.target

[Service]
ExecStart=/usr/local/sbin/nmpi-lab-guest watch
Restart=always
RestartSec=1
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=sysinit.target
"""

UNIT_INIT = f"""[Unit]
Description=nmpi-lab-init: users, keys and files
After=nmpi-lab-guest-boot.service local-fs.target
Before=ssh.service sshd.service systemd-user-sessions.service
ConditionPathExists=!{cloud_config.INIT_DONE}

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutSec=0
ExecStart=/bin/sh {INIT_SCRIPT}
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
"""

UNIT_FINAL = f"""[Unit]
Description=nmpi-lab-init: packages and scripts
After=nmpi-lab-init.service network-online.target ssh.service docker.service
After=systemd-user-sessions.service
Wants=network-online.target
ConditionPathExists=!{cloud_config.FINAL_DONE}

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutSec=0
ExecStart=/bin/sh {FINAL_SCRIPT}
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
"""


def guest_files(init: cloud_config.InitScripts, raw_user_data: bytes) -> tuple[GuestFile, ...]:
    """Everything written into a new instance's container: agent, units, first-boot scripts."""
    units = "/etc/systemd/system"
    files = [
        GuestFile(GUEST_AGENT, GUEST_AGENT_SCRIPT.encode(), 0o755),
        GuestFile(f"{units}/nmpi-lab-guest-boot.service", UNIT_GUEST_BOOT.encode()),
        GuestFile(f"{units}/nmpi-lab-guest.service", UNIT_GUEST_WATCH.encode()),
        GuestFile(f"{units}/nmpi-lab-init.service", UNIT_INIT.encode()),
        GuestFile(f"{units}/nmpi-lab-final.service", UNIT_FINAL.encode()),
        GuestFile(INIT_SCRIPT, init.init.encode(), 0o700),
        GuestFile(FINAL_SCRIPT, init.final.encode(), 0o700),
        GuestFile("/var/lib/cloud/instance/user-data.txt", raw_user_data, 0o600),
        GuestFile("/usr/local/bin/cloud-init", cloud_config.CLOUD_INIT_SHIM.encode(), 0o755),
    ]
    for unit, target in (
        ("nmpi-lab-guest-boot.service", "sysinit.target"),
        ("nmpi-lab-guest.service", "sysinit.target"),
        ("nmpi-lab-init.service", "multi-user.target"),
        ("nmpi-lab-final.service", "multi-user.target"),
    ):
        files.append(GuestFile(f"{units}/{target}.wants/{unit}", link=f"{units}/{unit}"))
    return tuple(files)


def network_record(interfaces: Sequence[Interface]) -> bytes:
    lines = ["# nmpi-lab: kind ip mac gateway default-route (written by the Nova driver)"]
    for index, iface in enumerate(interfaces):
        first = "yes" if index == 0 else "no"
        lines.append(f"iface {iface.ip} {iface.mac.lower()} {iface.gateway or '-'} {first}")
    return ("\n".join(lines) + "\n").encode()


def devices_record(devices: Iterable[BlockDevice]) -> bytes:
    lines = ["# nmpi-lab: node loop-device backing-file (written by the Nova driver)"]
    lines += [f"{d.mountpoint} {d.loop} {d.file}" for d in devices]
    return ("\n".join(lines) + "\n").encode()


def parse_devices_record(text: str) -> list[BlockDevice]:
    devices = []
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].startswith("/dev/"):
            devices.append(BlockDevice(mountpoint=parts[0], loop=parts[1], file=parts[2]))
    return devices


def strip_console(text: str) -> str:
    """Console output as text: no terminal escapes, no carriage returns."""
    return _CR.sub("\n", _ANSI.sub("", text))


def _tar(files: Iterable[GuestFile]) -> bytes:
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for file in files:
            info = tarfile.TarInfo(file.path.lstrip("/"))
            info.mtime = int(now)
            info.uid = info.gid = 0
            if file.link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = file.link
                tar.addfile(info)
            else:
                info.mode = file.mode
                info.size = len(file.content)
                tar.addfile(info, io.BytesIO(file.content))
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# the hypervisor


class DockerHypervisor:
    """The instances of one region on this host's Docker engine."""

    def __init__(
        self,
        region: str,
        *,
        client_factory: Callable[[], Any] | None = None,
        docker_timeout: int = 120,
    ) -> None:
        if not region or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", region):
            raise LabError(f"invalid region name {region!r}")
        self.region = region
        self._factory = client_factory or (lambda: docker.from_env(timeout=docker_timeout))
        self._local = threading.local()
        # Network create/connect and prune must not interleave (one compute per region).
        self._network_lock = threading.RLock()

    # -- names and lookups -------------------------------------------------------------------

    @property
    def client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._factory()
            self._local.client = client
        return client

    def container_name(self, instance_uuid: str) -> str:
        return f"nmpilab-{self.region}-{instance_uuid}"

    def network_name(self, network_id: str) -> str:
        return f"nmpilab-{self.region}-{network_id}"

    def _container(self, instance_uuid: str) -> Any:
        try:
            return self.client.containers.get(self.container_name(instance_uuid))
        except docker.errors.NotFound as exc:
            raise NotFoundError(f"instance {instance_uuid} has no container") from exc

    def exists(self, instance_uuid: str) -> bool:
        try:
            self._container(instance_uuid)
        except NotFoundError:
            return False
        return True

    def list_instances(self) -> list[tuple[str, str]]:
        """(instance uuid, Nova instance name) of every container of the region."""
        containers = self.client.api.containers(
            all=True, filters={"label": [f"{LABEL}=1", f"{LABEL_REGION}={self.region}"]}
        )
        found = []
        for container in containers:
            labels = container.get("Labels") or {}
            uuid = labels.get(LABEL_INSTANCE_UUID)
            if uuid:
                found.append((uuid, labels.get(LABEL_NOVA_NAME, "")))
        return found

    def image_present(self, image: str) -> bool:
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def ping(self) -> None:
        try:
            self.client.ping()
        except Exception as exc:
            raise LabError(f"the Docker engine does not answer: {exc}") from exc

    # -- networks ------------------------------------------------------------------------------

    def ensure_network(self, iface: Interface) -> Any:
        """The Docker network of iface's Neutron network, made if missing (idempotent)."""
        name = self.network_name(iface.network_id)
        cidr = ipaddress.ip_network(iface.cidr, strict=False)
        with self._network_lock:
            existing = self._network_by_name(name)
            if existing is not None:
                if self._network_cidrs(existing) == [cidr]:
                    return existing
                if self._network_in_use(existing):
                    raise NetworkConflictError(
                        f"Docker network {name} has subnet"
                        f" {', '.join(map(str, self._network_cidrs(existing)))}, not {cidr},"
                        " and containers use it"
                    )
                LOG.info("removing %s: its subnet is not %s any more", name, cidr)
                existing.remove()
            self._clear_overlaps(name, cidr)
            labels = {
                LABEL: "1",
                LABEL_REGION: self.region,
                LABEL_NETWORK_ID: iface.network_id,
                LABEL_SUBNET_ID: iface.subnet_id,
                LABEL_CIDR: str(cidr),
            }
            pool = docker.types.IPAMPool(subnet=str(cidr), gateway=iface.gateway or None)
            options = {}
            if iface.mtu:
                options["com.docker.network.driver.mtu"] = str(iface.mtu)
            try:
                network = self.client.networks.create(
                    name,
                    driver="bridge",
                    ipam=docker.types.IPAMConfig(pool_configs=[pool]),
                    labels=labels,
                    options=options,
                    check_duplicate=True,
                )
            except docker.errors.APIError as exc:
                raise NetworkConflictError(
                    f"cannot make Docker network {name} for subnet {cidr}: {exc.explanation}"
                ) from exc
            LOG.info("Docker network %s made for %s (gateway %s)", name, cidr, iface.gateway)
            return network

    def _network_by_name(self, name: str) -> Any:
        for network in self.client.networks.list(names=[name]):
            if network.name == name:
                network.reload()
                return network
        return None

    @staticmethod
    def _network_cidrs(network: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        configs = (network.attrs.get("IPAM") or {}).get("Config") or []
        return [ipaddress.ip_network(c["Subnet"], strict=False) for c in configs if "Subnet" in c]

    def _network_in_use(self, network: Any) -> bool:
        """Whether a container is on the network, running or not.

        Docker lists only running containers' endpoints on the network (and removes a network
        a stopped container is still connected to): the containers' own settings count too.
        """
        network.reload()
        if network.attrs.get("Containers"):
            return True
        return bool(self.client.api.containers(all=True, filters={"network": network.name}))

    def network_exists(self, network_id: str) -> bool:
        return self._network_by_name(self.network_name(network_id)) is not None

    def _clear_overlaps(
        self, name: str, cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    ) -> None:
        for network in self.client.networks.list():
            if network.name == name:
                continue
            network.reload()
            overlapping = [c for c in self._network_cidrs(network) if c.overlaps(cidr)]
            if not overlapping:
                continue
            labels = network.attrs.get("Labels") or {}
            network_id = labels.get(LABEL_NETWORK_ID) or ""
            # Only an instance network of this region (named by its Neutron id), never one
            # the lab's Neutron side made (e.g. nmpilab-<region>-ext).
            stale = (
                labels.get(LABEL) == "1"
                and labels.get(LABEL_REGION) == self.region
                and _UUID.fullmatch(network_id)
                and network.name == self.network_name(network_id)
                and not self._network_in_use(network)
            )
            if stale:
                LOG.info("removing unused lab network %s: it overlaps %s", network.name, cidr)
                network.remove()
                continue
            raise NetworkConflictError(
                f"subnet {cidr} overlaps Docker network {network.name}"
                f" ({', '.join(map(str, overlapping))}): the lab puts every subnet on one"
                " host, so subnets may not overlap; choose another CIDR"
            )

    def repair_networks(self, instance_uuid: str, interfaces: Sequence[Interface]) -> None:
        """Before a start: give back networks that went away while the instance was stopped.

        A network made again has a new id, and Docker looks a stopped container's networks up
        by id: such an interface is disconnected and connected again (same IP).
        """
        container = self._container(instance_uuid)
        if container.status in ("running", "paused", "restarting"):
            return
        settings = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        api = self.client.api
        with self._network_lock:
            for iface in interfaces:
                network = self.ensure_network(iface)
                name = self.network_name(iface.network_id)
                known = settings.get(name)
                if known is not None and known.get("NetworkID") in ("", None, network.id):
                    continue
                if known is not None:
                    api.disconnect_container_from_network(container.id, name, force=True)
                api.connect_container_to_network(
                    container.id, name, ipv4_address=iface.ip, mac_address=iface.mac.lower()
                )
                LOG.info("%s connected again to %s (%s)", container.name, name, iface.ip)

    def prune_networks(self, network_ids: Iterable[str]) -> None:
        """Remove these networks' Docker networks when no container uses them any more."""
        with self._network_lock:
            for network_id in set(network_ids):
                network = self._network_by_name(self.network_name(network_id))
                if network is None or self._network_in_use(network):
                    continue
                try:
                    network.remove()
                    LOG.info("Docker network %s removed (unused)", network.name)
                except docker.errors.APIError as exc:
                    LOG.warning("cannot remove Docker network %s: %s", network.name, exc)

    # -- lifecycle -----------------------------------------------------------------------------

    def create(self, spec: VMSpec) -> None:
        """Make the instance's container (not started): networks, interfaces, guest files."""
        if not spec.interfaces:
            raise LabError("an instance needs at least one network with an IPv4 subnet")
        if not self.image_present(spec.image):
            raise LabError(f"Docker image {spec.image} is not on this host (build it: make images)")
        api = self.client.api
        first = spec.interfaces[0]
        name = self.container_name(spec.instance_uuid)
        with self._network_lock:
            for iface in spec.interfaces:
                self.ensure_network(iface)
            dns: list[str] = []
            for iface in spec.interfaces:
                dns += [server for server in iface.dns if server not in dns]
            host_config = api.create_host_config(
                cap_add=list(CAP_ADD),
                cap_drop=list(CAP_DROP),
                security_opt=list(SECURITY_OPT),
                tmpfs=dict(TMPFS),
                binds=[CGROUP_BIND],
                device_cgroup_rules=list(DEVICE_CGROUP_RULES),
                network_mode=self.network_name(first.network_id),
                dns=dns or None,
                sysctls=dict(SYSCTLS),
                log_config=LOG_CONFIG,
                mem_limit=f"{spec.memory_mb}m" if spec.memory_mb else None,
                nano_cpus=spec.vcpus * 1_000_000_000 if spec.vcpus else None,
            )
            networking = api.create_networking_config(
                {
                    self.network_name(first.network_id): api.create_endpoint_config(
                        ipv4_address=first.ip
                    )
                }
            )
            labels = {
                LABEL: "1",
                LABEL_REGION: self.region,
                LABEL_INSTANCE_UUID: spec.instance_uuid,
                LABEL_INSTANCE_NAME: spec.display_name,
                LABEL_NOVA_NAME: spec.nova_name,
            }
            try:
                created = api.create_container(
                    spec.image,
                    name=name,
                    hostname=spec.hostname,
                    labels=labels,
                    tty=True,
                    mac_address=first.mac.lower(),
                    environment={"SYSTEMD_COLORS": "0"},
                    host_config=host_config,
                    networking_config=networking,
                )
            except docker.errors.APIError as exc:
                raise LabError(f"cannot create container {name}: {exc.explanation}") from exc
            container_id = created["Id"]
            try:
                # Connected before the first start: every interface exists at boot, like NICs.
                # (API 1.41 ignores the MAC address here: the guest agent sets it.)
                for iface in spec.interfaces[1:]:
                    api.connect_container_to_network(
                        container_id,
                        self.network_name(iface.network_id),
                        ipv4_address=iface.ip,
                        mac_address=iface.mac.lower(),
                    )
                files = [
                    *spec.files,
                    GuestFile(NETWORK_RECORD, network_record(spec.interfaces)),
                    GuestFile(DEVICES_RECORD, devices_record([])),
                ]
                self._put_files(container_id, files)
            except Exception:
                with contextlib.suppress(Exception):
                    api.remove_container(container_id, force=True, v=True)
                raise
        LOG.info("container %s created (%s)", name, spec.image)

    def start(self, instance_uuid: str) -> None:
        container = self._container(instance_uuid)
        if container.status == "paused":
            container.unpause()
        elif container.status != "running":
            container.start()
            # A console wide enough for systemd's status lines (Docker's TTY starts at 80x24).
            with contextlib.suppress(docker.errors.APIError):
                container.resize(height=50, width=160)
            # The boot unit does the same a moment later; now, the devices are there when
            # Nova's start or reboot returns. (Before the first boot there is nothing to do.)
            if self._read_devices(container):
                try:
                    self.guest_sync(instance_uuid)
                except LabError as exc:
                    LOG.warning("guest agent sync after start: %s", exc)

    def stop(self, instance_uuid: str, timeout: int = 60) -> None:
        """Shut the instance down (systemd's clean shutdown, killed after timeout; 0: kill)."""
        container = self._container(instance_uuid)
        if container.status == "paused":
            container.unpause()
            container.reload()
        if container.status in ("running", "restarting"):
            self.client.api.stop(container.id, timeout=max(0, int(timeout)))

    def kill(self, instance_uuid: str) -> None:
        container = self._container(instance_uuid)
        if container.status == "paused":
            container.unpause()
        container.reload()
        if container.status in ("running", "restarting"):
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
            container.wait(timeout=30)

    def pause(self, instance_uuid: str) -> None:
        container = self._container(instance_uuid)
        if container.status == "running":
            container.pause()

    def unpause(self, instance_uuid: str) -> None:
        container = self._container(instance_uuid)
        if container.status == "paused":
            container.unpause()

    def delete(self, instance_uuid: str) -> list[str]:
        """Remove the container and its anonymous volumes, release its loop devices.

        Returns the Neutron network ids it was on (for prune_networks). Idempotent.
        """
        try:
            container = self._container(instance_uuid)
        except NotFoundError:
            return []
        devices = self._read_devices(container)
        networks = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        prefix = f"nmpilab-{self.region}-"
        network_ids = [n[len(prefix) :] for n in networks if n.startswith(prefix)]
        if container.status == "paused":
            with contextlib.suppress(docker.errors.APIError):
                container.unpause()
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
        for device in devices:
            self._release_loop(device.loop, device.file)
        LOG.info("container %s removed", container.name)
        return network_ids

    def power_state(self, instance_uuid: str) -> PowerState:
        container = self._container(instance_uuid)
        state = container.attrs.get("State") or {}
        status = state.get("Status", container.status)
        if status == "paused" or state.get("Paused"):
            return PowerState.PAUSED
        if status in ("running", "restarting"):
            return PowerState.RUNNING
        if status in ("created", "exited"):
            return PowerState.SHUTDOWN
        if status == "dead":
            return PowerState.CRASHED
        return PowerState.NOSTATE

    def container_id(self, instance_uuid: str) -> str:
        return str(self._container(instance_uuid).id)

    def console_log(self, instance_uuid: str, max_bytes: int = 100 * 1024) -> str:
        """The tail of the instance's console (its TTY): systemd, nmpi-lab-init, the guest."""
        container = self._container(instance_uuid)
        raw = container.logs(stdout=True, stderr=True, tail=5000)
        text = strip_console(raw[-max_bytes * 2 :].decode("utf-8", errors="replace"))
        return text[-max_bytes:]

    # -- inside the container -------------------------------------------------------------------

    def exec(self, instance_uuid: str, argv: Sequence[str], user: str = "root") -> tuple[int, str]:
        container = self._container(instance_uuid)
        result = container.exec_run(list(argv), user=user, demux=False)
        output = result.output.decode("utf-8", errors="replace") if result.output else ""
        return int(result.exit_code), output

    def wait_for_boot(self, instance_uuid: str, timeout: float) -> bool:
        """Wait until the instance's init stage ran (key pair in place, sshd may start).

        False after timeout (the instance may still come up). LabError when the container
        stops meanwhile: its console's tail says why.
        """
        deadline = time.monotonic() + timeout
        while True:
            container = self._container(instance_uuid)
            if container.status not in ("running", "restarting", "created"):
                tail = self.console_log(instance_uuid, 2000)
                raise LabError(
                    f"instance {instance_uuid} stopped while booting"
                    f" ({container.status}); console:\n{tail}"
                )
            if container.status == "running":
                code, _ = self.exec(instance_uuid, ["test", "-e", cloud_config.INIT_DONE])
                if code == 0:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)

    def system_state(self, instance_uuid: str) -> str:
        """What `systemctl is-system-running` says inside (starting, running, degraded...)."""
        _, output = self.exec(instance_uuid, ["systemctl", "is-system-running"])
        return output.strip()

    def guest_sync(self, instance_uuid: str) -> None:
        """Have the guest agent apply the records now (running containers only)."""
        container = self._container(instance_uuid)
        if container.status != "running":
            return
        code, output = self.exec(instance_uuid, [GUEST_AGENT, "sync"])
        if code != 0:
            raise LabError(f"guest agent sync failed in {container.name}: {output.strip()}")

    def _put_files(self, container_id: str, files: Iterable[GuestFile]) -> None:
        if not self.client.api.put_archive(container_id, "/", _tar(files)):
            raise LabError(f"cannot write files into container {container_id}")

    def _read_file(self, container: Any, path: str) -> str | None:
        try:
            stream, _ = container.get_archive(path)
        except docker.errors.NotFound:
            return None
        data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        return extracted.read().decode("utf-8", errors="replace")
        return None

    # -- volumes ---------------------------------------------------------------------------------

    def _read_devices(self, container: Any) -> list[BlockDevice]:
        text = self._read_file(container, DEVICES_RECORD)
        return parse_devices_record(text) if text else []

    def block_devices(self, instance_uuid: str) -> list[BlockDevice]:
        return self._read_devices(self._container(instance_uuid))

    def _write_devices(self, container: Any, devices: Sequence[BlockDevice]) -> None:
        self._put_files(container.id, [GuestFile(DEVICES_RECORD, devices_record(devices))])

    def attach_volume(self, instance_uuid: str, mountpoint: str, file: str) -> BlockDevice:
        """Give the instance the volume file as block device mountpoint (e.g. /dev/vdb).

        Works with the instance stopped too (the node appears at its next boot). Idempotent.
        """
        _check_mountpoint(mountpoint)
        file = os.path.realpath(file)
        container = self._container(instance_uuid)
        devices = self._read_devices(container)
        for device in devices:
            if (
                device.mountpoint == mountpoint
                and device.file == file
                and loop_backing_file(device.loop) == file
            ):
                self.guest_sync(instance_uuid)
                return device
        taken = [d for d in devices if d.mountpoint == mountpoint and d.file != file]
        if taken:
            raise LabError(f"{mountpoint} of instance {instance_uuid} holds {taken[0].file}")
        loop = loop_attach(file)
        device = BlockDevice(mountpoint=mountpoint, loop=loop, file=file)
        kept = [d for d in devices if d.mountpoint != mountpoint]
        try:
            self._write_devices(container, [*kept, device])
            self.guest_sync(instance_uuid)
        except Exception:
            with contextlib.suppress(LabError):
                loop_detach(loop, file)
            raise
        return device

    def detach_volume(self, instance_uuid: str, mountpoint: str, file: str | None = None) -> None:
        """Take the volume away from the instance; DeviceBusyError while it is mounted inside."""
        real = os.path.realpath(file) if file else None
        try:
            container = self._container(instance_uuid)
        except NotFoundError:
            container = None
        devices = self._read_devices(container) if container is not None else []
        mine = [
            d for d in devices if d.mountpoint == mountpoint and (real is None or d.file == real)
        ]
        for device in mine:
            if loop_backing_file(device.loop) == device.file and loop_in_use(device.loop):
                raise DeviceBusyError(
                    f"{mountpoint} is in use inside the instance"
                    f"{self._mount_hint(instance_uuid, device)}: unmount it first"
                )
        if container is not None and mine:
            self._write_devices(container, [d for d in devices if d not in mine])
            self.guest_sync(instance_uuid)
        for device in mine:
            self._release_loop(device.loop, device.file)
        if real is not None and not mine:
            # No record (e.g. the container is gone): release what still holds the file,
            # unless a mount keeps it busy.
            for loop in loops_of(real):
                if not loop_in_use(loop):
                    self._release_loop(loop, real)

    def _mount_hint(self, instance_uuid: str, device: BlockDevice) -> str:
        """Where the instance's PID 1 sees the volume (or a partition of it) mounted."""
        numbers = {_sysfs_dev(device.loop)}
        numbers |= {
            part.read_text().strip()
            for part in Path(f"/sys/block/{device.loop}").glob(f"{device.loop}p*/dev")
        }
        try:
            code, output = self.exec(instance_uuid, ["cat", "/proc/1/mountinfo"])
        except LabError:
            return ""
        points = [
            fields[4]
            for fields in (line.split() for line in output.splitlines())
            if code == 0 and len(fields) > 4 and fields[2] in numbers
        ]
        return f" (mounted on {', '.join(points)})" if points else ""

    def set_volumes(self, instance_uuid: str, wanted: Sequence[tuple[str, str]]) -> None:
        """Make the instance's volumes exactly `wanted` [(mountpoint, file)] (before a start).

        Loop devices still holding the right file are kept (a reboot); missing ones are made
        (after the host restarted); volumes no longer wanted are released.
        """
        container = self._container(instance_uuid)
        current = self._read_devices(container)
        result: list[BlockDevice] = []
        for mountpoint, file in wanted:
            _check_mountpoint(mountpoint)
            real = os.path.realpath(file)
            keep = next(
                (
                    d
                    for d in current
                    if d.mountpoint == mountpoint
                    and d.file == real
                    and loop_backing_file(d.loop) == real
                ),
                None,
            )
            result.append(keep or BlockDevice(mountpoint, loop_attach(real), real))
        for device in current:
            if device not in result:
                self._release_loop(device.loop, device.file)
        if result != current:
            self._write_devices(container, result)
        self.guest_sync(instance_uuid)

    def restart_after_guest_reboot(self, event: VMEvent) -> bool:
        """Start again a container whose systemd exited for an in-guest reboot (exit 129).

        True when the event was such an exit (whether or not the start worked).
        """
        if event.action != "die" or event.exit_code != REBOOT_EXIT_CODE:
            return False
        try:
            if self._container(event.instance_uuid).status == "exited":
                LOG.info("instance %s rebooted itself: starting it again", event.instance_uuid)
                self.start(event.instance_uuid)
        except (LabError, docker.errors.APIError) as exc:
            LOG.warning("instance %s rebooted itself, not restarted: %s", event.instance_uuid, exc)
        return True

    @staticmethod
    def _release_loop(loop: str, file: str) -> None:
        try:
            loop_detach(loop, file)
        except LabError as exc:
            LOG.warning("cannot release /dev/%s (%s): %s", loop, file, exc)

    # -- events ------------------------------------------------------------------------------------

    def events(self, stop: threading.Event) -> Iterator[VMEvent]:
        """Lifecycle events of the region's containers until stop is set (reconnects)."""
        filters = {
            "type": "container",
            "label": [f"{LABEL}=1", f"{LABEL_REGION}={self.region}"],
            "event": ["start", "die", "pause", "unpause", "destroy"],
        }
        current: list[Any] = []

        def close_on_stop() -> None:
            stop.wait()
            for stream in list(current):
                with contextlib.suppress(Exception):
                    stream.close()

        threading.Thread(target=close_on_stop, daemon=True, name="nmpi-lab-events-stop").start()
        backoff = 1.0
        while not stop.is_set():
            client = self._factory()
            try:
                stream = client.events(decode=True, filters=filters)
                current[:] = [stream]
                if stop.is_set():
                    break
                backoff = 1.0
                for event in stream:
                    attributes = (event.get("Actor") or {}).get("Attributes") or {}
                    uuid = attributes.get(LABEL_INSTANCE_UUID)
                    if not uuid:
                        continue
                    code = str(attributes.get("exitCode", ""))
                    yield VMEvent(
                        action=str(event.get("Action") or event.get("status")),
                        instance_uuid=uuid,
                        exit_code=int(code) if code.isdigit() else None,
                    )
            except Exception as exc:
                if stop.is_set():
                    break
                LOG.warning("Docker events interrupted (%s); again in %.0fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                current.clear()
                with contextlib.suppress(Exception):
                    client.close()


def _sysfs_dev(loop: str) -> str:
    try:
        return Path(f"/sys/block/{loop}/dev").read_text().strip()
    except OSError:
        return ""


def _check_mountpoint(mountpoint: str) -> None:
    if not re.fullmatch(r"/dev/[a-z][a-z0-9]*[a-z]", mountpoint):
        raise LabError(f"device name {mountpoint!r} is not like /dev/vdb")


def interfaces_from_mapping(items: Sequence[Mapping[str, Any]]) -> tuple[Interface, ...]:
    """Interfaces from plain dicts (tests and tools): keys as Interface's fields."""
    return tuple(
        Interface(
            network_id=str(item["network_id"]),
            subnet_id=str(item.get("subnet_id", "")),
            cidr=str(item["cidr"]),
            gateway=item.get("gateway"),
            ip=str(item["ip"]),
            mac=str(item["mac"]),
            mtu=item.get("mtu"),
            dns=tuple(item.get("dns", ())),
        )
        for item in items
    )
