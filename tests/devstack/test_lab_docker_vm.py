"""The lab hypervisor's Docker side (nmpi_lab_openstack.docker_vm) with real "VMs".

Containers of the project's vm image (make images) on test networks, as Nova's driver makes
them: identity, interfaces, user data, SSH, volumes as loop devices moved between instances,
reboots and deletion. Needs root (losetup) and the Docker engine. Everything made here is
named nmpilab-nmpilabtest-... and removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import pytest
from nmpi_lab_openstack import cloud_config, docker_vm

from tests.devstack.labcloud import wait_until
from tests.support import read_images_env

REGION = "nmpilabtest"
# Test subnets: outside the lab's address plan (198.18.0.0/15, 10.81/16, 10.82/16).
NET_A = ("10.197.1.0/24", "10.197.1.1")
NET_B = ("10.197.2.0/24", "10.197.2.1")
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout: float = 60.0) -> T:
    return wait_until(what, check, timeout, interval=0.5)


@dataclass
class VM:
    uuid: str
    interfaces: tuple[docker_vm.Interface, ...]
    hostname: str

    @property
    def ip(self) -> str:
        return self.interfaces[0].ip


@pytest.fixture(scope="module")
def image() -> str:
    env = read_images_env()
    name = f"{env['NMPI_IMAGE_VM']}:{env['NMPI_IMAGE_TAG']}"
    client = docker.from_env()
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {name} is missing: build it with `make images`")
    return name


@pytest.fixture(scope="module")
def hv() -> Iterator[docker_vm.DockerHypervisor]:
    hypervisor = docker_vm.DockerHypervisor(REGION)
    yield hypervisor
    # Whatever a failed test left: containers (with their volumes), networks, loop devices.
    for instance_uuid, _ in hypervisor.list_instances():
        hypervisor.delete(instance_uuid)
    client = docker.from_env()
    for network in client.networks.list(filters={"label": f"{docker_vm.LABEL_REGION}={REGION}"}):
        with contextlib.suppress(docker.errors.APIError):
            network.remove()


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.fixture
def volume_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "volume-test.img"
    with path.open("wb") as handle:
        handle.truncate(256 * 1024 * 1024)
    yield path
    for loop in docker_vm.loops_of(str(path)):
        with contextlib.suppress(docker_vm.LabError):
            docker_vm.loop_detach(loop)


USER_DATA = b"""#cloud-config
users:
  - default
  - name: alice
    groups: [docker]
    shell: /bin/bash
write_files:
  - path: /etc/nmpi-test/plain.txt
    content: written by write_files
    permissions: '0640'
  - path: /etc/nmpi-test/encoded.bin
    encoding: b64
    content: aGVsbG8gd29ybGQ=
runcmd:
  - echo "runcmd ran as $(id -un)" > /var/tmp/runcmd.out
  - [sh, -c, "hostname > /var/tmp/hostname.out"]
bootcmd:
  - echo unsupported
"""


def make_vm(
    hv: docker_vm.DockerHypervisor,
    image: str,
    host_number: int,
    *,
    networks: tuple[tuple[str, str, str], ...],
    user_data: bytes = b"",
    keys: tuple[str, ...] = (),
) -> VM:
    """A started instance on the given (network id, cidr, gateway) networks."""
    instance_uuid = str(uuid.uuid4())
    interfaces = tuple(
        docker_vm.Interface(
            network_id=network_id,
            subnet_id=f"subnet-of-{network_id[:8]}",
            cidr=cidr,
            gateway=gateway,
            ip=cidr.rsplit(".", 1)[0] + f".{host_number}",
            mac=f"fa:16:3e:00:{index:02x}:{host_number:02x}",
        )
        for index, (network_id, cidr, gateway) in enumerate(networks)
    )
    hostname = f"vm-{host_number}"
    init = cloud_config.render(
        instance_id=instance_uuid,
        default_user_name="debian",
        public_keys=keys,
        user_data=user_data,
    )
    spec = docker_vm.VMSpec(
        instance_uuid=instance_uuid,
        display_name=f"Test VM {host_number}",
        nova_name=f"instance-{host_number:08x}",
        hostname=hostname,
        image=image,
        interfaces=interfaces,
        files=docker_vm.guest_files(init, user_data),
    )
    hv.create(spec)
    hv.start(instance_uuid)
    assert hv.wait_for_boot(instance_uuid, 90), hv.console_log(instance_uuid)
    return VM(instance_uuid, interfaces, hostname)


@pytest.fixture(scope="module")
def network_ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture(scope="module")
def vm(
    hv: docker_vm.DockerHypervisor, image: str, network_ids: tuple[str, str], ssh_key: Path
) -> VM:
    """Two networks, user data and a key pair."""
    a, b = network_ids
    return make_vm(
        hv,
        image,
        10,
        networks=((a, *NET_A), (b, *NET_B)),
        user_data=USER_DATA,
        keys=(ssh_key.with_suffix(".pub").read_text().strip(),),
    )


@pytest.fixture(scope="module")
def vm2(hv: docker_vm.DockerHypervisor, image: str, network_ids: tuple[str, str]) -> VM:
    """A second instance on the first network only, no user data."""
    return make_vm(hv, image, 20, networks=((network_ids[0], *NET_A),))


def sh(hv: docker_vm.DockerHypervisor, vm: VM, command: str, user: str = "root") -> str:
    code, output = hv.exec(vm.uuid, ["sh", "-c", command], user=user)
    assert code == 0, f"{command!r} exited {code}: {output}"
    return output


def interfaces_inside(hv: docker_vm.DockerHypervisor, vm: VM) -> dict[str, str]:
    """IPv4 address -> MAC address of each interface inside the instance."""
    found = {}
    for line in sh(hv, vm, "ip -o -4 addr show scope global").splitlines():
        device, address = line.split()[1], line.split()[3].split("/")[0]
        if device.startswith("docker"):  # the inner Docker engine's bridge
            continue
        found[address] = sh(hv, vm, f"cat /sys/class/net/{device}/address").strip()
    return found


def default_route(hv: docker_vm.DockerHypervisor, vm: VM) -> str:
    """The default route's gateway inside the VM ("" while there is none)."""
    words = sh(hv, vm, "ip -4 route show default").split()
    return words[2] if len(words) > 2 else ""


def ssh(key: Path, address: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            f"debian@{address}",
            command,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ssh_banner(address: str) -> bytes:
    with socket.create_connection((address, 22), timeout=3) as conn:
        return conn.recv(64)


# -- identity and network ---------------------------------------------------------------------


@pytest.mark.slow
def test_container_and_networks_follow_the_contract(
    hv: docker_vm.DockerHypervisor, vm: VM, network_ids: tuple[str, str]
) -> None:
    client = docker.from_env()
    container = client.containers.get(f"nmpilab-{REGION}-{vm.uuid}")
    lab_labels = {k: v for k, v in container.labels.items() if k.startswith("nmpi.lab")}
    assert lab_labels == {
        "nmpi.lab": "1",
        "nmpi.lab.region": REGION,
        "nmpi.lab.instance-uuid": vm.uuid,
        "nmpi.lab.instance-name": "Test VM 10",
        "nmpi.lab.nova-name": "instance-0000000a",
    }
    host_config = container.attrs["HostConfig"]
    assert host_config["Privileged"] is False
    assert host_config["DeviceCgroupRules"] == ["b 7:* rwm", "b 259:* rwm"]
    for network_id, (cidr, gateway) in zip(network_ids, (NET_A, NET_B), strict=True):
        network = client.networks.get(f"nmpilab-{REGION}-{network_id}")
        assert network.attrs["Labels"] == {
            "nmpi.lab": "1",
            "nmpi.lab.region": REGION,
            "nmpi.lab.network-id": network_id,
            "nmpi.lab.subnet-id": f"subnet-of-{network_id[:8]}",
            "nmpi.lab.cidr": cidr,
        }
        assert network.attrs["IPAM"]["Config"] == [{"Subnet": cidr, "Gateway": gateway}]
    assert (vm.uuid, "instance-0000000a") in hv.list_instances()
    assert hv.power_state(vm.uuid) is docker_vm.PowerState.RUNNING


@pytest.mark.slow
def test_instance_has_its_hostname_addresses_macs_and_default_route(
    hv: docker_vm.DockerHypervisor, vm: VM
) -> None:
    assert sh(hv, vm, "hostname").strip() == vm.hostname
    # Every port's MAC, including the second network's (Docker 20.10 cannot set that one).
    wait_for(
        "the ports' MAC addresses inside",
        lambda: interfaces_inside(hv, vm) == {i.ip: i.mac for i in vm.interfaces},
    )
    assert default_route(hv, vm) == NET_A[1]
    # The host (the gateway of both networks) reaches sshd on each address.
    for address in [iface.ip for iface in vm.interfaces]:
        banner = wait_for(f"sshd on {address}", partial(ssh_banner, address))
        assert banner.startswith(b"SSH-")


@pytest.mark.slow
def test_user_data_and_key_pair_are_applied_once(
    hv: docker_vm.DockerHypervisor, vm: VM, ssh_key: Path
) -> None:
    wait_for(
        "the final stage",
        lambda: hv.exec(vm.uuid, ["test", "-e", cloud_config.BOOT_FINISHED])[0] == 0,
    )
    assert sh(hv, vm, "cat /etc/nmpi-test/plain.txt") == "written by write_files"
    assert sh(hv, vm, "stat -c %a /etc/nmpi-test/plain.txt").strip() == "640"
    assert sh(hv, vm, "cat /etc/nmpi-test/encoded.bin") == "hello world"
    assert sh(hv, vm, "cat /var/tmp/runcmd.out").strip() == "runcmd ran as root"
    assert sh(hv, vm, "cat /var/tmp/hostname.out").strip() == vm.hostname
    assert sh(hv, vm, "id -nG alice").split() == ["alice", "docker"]
    assert sh(hv, vm, "getent passwd alice").strip().endswith(":/home/alice:/bin/bash")
    # The default user: key pair, passwordless sudo, bash.
    public_key = ssh_key.with_suffix(".pub").read_text().strip()
    assert sh(hv, vm, "cat /home/debian/.ssh/authorized_keys").strip() == public_key
    assert sh(hv, vm, "sudo -n id -u", user="debian").strip() == "0"
    assert sh(hv, vm, "getent passwd debian").strip().endswith(":/bin/bash")
    assert sh(hv, vm, "cloud-init status").strip() == "status: done"
    assert hv.system_state(vm.uuid) == "running"
    console = hv.console_log(vm.uuid)
    assert "nmpi-lab-init: stage init finished" in console
    assert "nmpi-lab-init: stage final finished" in console
    assert "nmpi-lab-init: WARNING: cloud-config key 'bootcmd' is not supported" in console
    assert "\x1b[" not in console
    assert "\r" not in console


@pytest.mark.slow
def test_sshd_answers_and_the_key_logs_in(vm: VM, ssh_key: Path) -> None:
    assert wait_for("sshd", lambda: ssh_banner(vm.ip)).startswith(b"SSH-2.0-")
    result = ssh(ssh_key, vm.ip, "hostname && sudo -n true && echo sudo-ok")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [vm.hostname, "sudo-ok"]


@pytest.mark.slow
def test_pause_and_power_states(hv: docker_vm.DockerHypervisor, vm2: VM) -> None:
    hv.pause(vm2.uuid)
    assert hv.power_state(vm2.uuid) is docker_vm.PowerState.PAUSED
    hv.unpause(vm2.uuid)
    assert hv.power_state(vm2.uuid) is docker_vm.PowerState.RUNNING


@pytest.mark.slow
def test_network_overlapping_another_is_refused(hv: docker_vm.DockerHypervisor) -> None:
    client = docker.from_env()
    other = client.networks.create(
        f"nmpilab-{REGION}-foreign",
        driver="bridge",
        ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet="10.197.3.0/24", gateway="10.197.3.1")]
        ),
    )
    try:
        iface = docker_vm.Interface(
            network_id=str(uuid.uuid4()),
            subnet_id="s",
            cidr="10.197.3.128/25",
            gateway="10.197.3.129",
            ip="10.197.3.130",
            mac="fa:16:3e:00:00:01",
        )
        with pytest.raises(docker_vm.NetworkConflictError, match=f"nmpilab-{REGION}-foreign"):
            hv.ensure_network(iface)
        assert not client.networks.list(names=[hv.network_name(iface.network_id)])
    finally:
        other.remove()


@pytest.mark.slow
def test_network_ensure_is_idempotent(hv: docker_vm.DockerHypervisor, vm: VM) -> None:
    first = hv.ensure_network(vm.interfaces[0])
    again = hv.ensure_network(vm.interfaces[0])
    assert first.id == again.id


# -- volumes ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_volume_is_a_block_device_whose_data_moves_between_instances(
    hv: docker_vm.DockerHypervisor, vm: VM, vm2: VM, volume_file: Path
) -> None:
    device = hv.attach_volume(vm.uuid, "/dev/vdb", str(volume_file))
    assert docker_vm.loop_backing_file(device.loop) == str(volume_file)
    listing = sh(hv, vm, "ls -l /dev/vdb")
    assert listing.startswith("brw-rw----")
    assert " root disk 7," in listing
    sh(hv, vm, "mkfs.ext4 -q /dev/vdb && mkdir -p /mnt/data && mount /dev/vdb /mnt/data")
    sh(hv, vm, "echo kept-across-instances > /mnt/data/proof")
    # Mounted: the detach is refused and nothing changes.
    with pytest.raises(docker_vm.DeviceBusyError, match="mounted on /mnt/data"):
        hv.detach_volume(vm.uuid, "/dev/vdb", str(volume_file))
    assert sh(hv, vm, "cat /mnt/data/proof").strip() == "kept-across-instances"
    sh(hv, vm, "umount /mnt/data")
    hv.detach_volume(vm.uuid, "/dev/vdb", str(volume_file))
    assert hv.exec(vm.uuid, ["test", "-e", "/dev/vdb"])[0] != 0
    assert docker_vm.loops_of(str(volume_file)) == []
    assert hv.block_devices(vm.uuid) == []

    hv.attach_volume(vm2.uuid, "/dev/vdc", str(volume_file))
    sh(hv, vm2, "mkdir -p /mnt/data && mount /dev/vdc /mnt/data")
    assert sh(hv, vm2, "cat /mnt/data/proof").strip() == "kept-across-instances"
    sh(hv, vm2, "umount /mnt/data")
    hv.detach_volume(vm2.uuid, "/dev/vdc", str(volume_file))
    assert docker_vm.loops_of(str(volume_file)) == []


@pytest.mark.slow
def test_partitions_made_inside_get_device_nodes(
    hv: docker_vm.DockerHypervisor, vm2: VM, volume_file: Path
) -> None:
    hv.attach_volume(vm2.uuid, "/dev/vdb", str(volume_file))
    # What parted does to tell the kernel about a new partition (BLKPG_ADD_PARTITION).
    blkpg = (
        "import ctypes, fcntl, os, struct\n"
        "spec = struct.pack('qqi64s64s', 1 << 20, 64 << 20, 1, b'', b'')\n"
        "part = ctypes.create_string_buffer(spec)\n"
        "arg = struct.pack('iiiP', 1, 0, ctypes.sizeof(part), ctypes.addressof(part))\n"
        "fcntl.ioctl(os.open('/dev/vdb', os.O_RDWR), 0x1269, arg)\n"
    )
    code, output = hv.exec(vm2.uuid, ["python3", "-c", blkpg])
    assert code == 0, output
    wait_for("/dev/vdb1", lambda: hv.exec(vm2.uuid, ["test", "-b", "/dev/vdb1"])[0] == 0, 10)
    sh(hv, vm2, "mkfs.ext4 -q /dev/vdb1 && mount /dev/vdb1 /mnt && touch /mnt/x")
    with pytest.raises(docker_vm.DeviceBusyError, match="mounted on /mnt"):
        hv.detach_volume(vm2.uuid, "/dev/vdb", str(volume_file))
    sh(hv, vm2, "umount /mnt")
    hv.detach_volume(vm2.uuid, "/dev/vdb", str(volume_file))
    wait_for("partition node removal", lambda: "vdb" not in sh(hv, vm2, "ls /dev"), 10)


@pytest.mark.slow
def test_stop_start_keeps_addresses_and_volume_mounted_from_fstab(
    hv: docker_vm.DockerHypervisor, vm2: VM, volume_file: Path
) -> None:
    hv.attach_volume(vm2.uuid, "/dev/vdb", str(volume_file))
    sh(hv, vm2, "mkfs.ext4 -q -F /dev/vdb && mkdir -p /srv/data")
    sh(hv, vm2, "echo '/dev/vdb /srv/data ext4 defaults 0 2' >> /etc/fstab && mount /srv/data")
    sh(hv, vm2, "echo before-reboot > /srv/data/file")
    # Neutron's ports, as the guest must show them before and after (not a snapshot taken
    # inside: CI once read none there, a moment's state or a lost exec output).
    ports = {iface.ip: iface.mac for iface in vm2.interfaces}
    wait_for("the ports inside before the stop", lambda: interfaces_inside(hv, vm2) == ports)

    # Nova's reboot: stop, give the volumes again, start.
    hv.stop(vm2.uuid, timeout=30)
    assert hv.power_state(vm2.uuid) is docker_vm.PowerState.SHUTDOWN
    hv.set_volumes(vm2.uuid, [("/dev/vdb", str(volume_file))])
    hv.start(vm2.uuid)
    wait_for(
        "/srv/data mounted at boot",
        lambda: "before-reboot" in sh(hv, vm2, "cat /srv/data/file || true"),
    )
    wait_for("the same ports inside after the start", lambda: interfaces_inside(hv, vm2) == ports)
    assert default_route(hv, vm2) == NET_A[1]

    # After a host restart the loop device is gone: set_volumes makes a new one.
    sh(hv, vm2, "umount /srv/data && sed -i /vdb/d /etc/fstab")
    hv.stop(vm2.uuid, timeout=30)
    (old,) = hv.block_devices(vm2.uuid)
    docker_vm.loop_detach(old.loop, str(volume_file))
    hv.set_volumes(vm2.uuid, [("/dev/vdb", str(volume_file))])
    (new,) = hv.block_devices(vm2.uuid)
    assert docker_vm.loop_backing_file(new.loop) == str(volume_file)
    hv.start(vm2.uuid)
    wait_for("/dev/vdb after boot", lambda: hv.exec(vm2.uuid, ["test", "-b", "/dev/vdb"])[0] == 0)
    sh(hv, vm2, "mount /dev/vdb /mnt && cat /mnt/file && umount /mnt")
    hv.set_volumes(vm2.uuid, [])
    assert docker_vm.loops_of(str(volume_file)) == []
    wait_for("/dev/vdb removal", lambda: hv.exec(vm2.uuid, ["test", "-e", "/dev/vdb"])[0] != 0)


@pytest.mark.slow
def test_in_guest_reboot_is_followed_by_a_start(hv: docker_vm.DockerHypervisor, vm2: VM) -> None:
    stop = threading.Event()
    seen: list[docker_vm.VMEvent] = []

    def watch() -> None:
        for event in hv.events(stop):
            seen.append(event)
            hv.restart_after_guest_reboot(event)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        time.sleep(1)  # the event stream is open
        started_before = container_started_at(vm2)
        hv.exec(vm2.uuid, ["systemctl", "--force", "reboot"])
        wait_for(
            "the container to start again", lambda: container_started_at(vm2) != started_before
        )
        wait_for(
            "a running instance", lambda: hv.power_state(vm2.uuid) is docker_vm.PowerState.RUNNING
        )
        dies = [e for e in seen if e.action == "die" and e.instance_uuid == vm2.uuid]
        assert dies
        assert dies[0].exit_code == docker_vm.REBOOT_EXIT_CODE
        wait_for("sshd after the reboot", lambda: ssh_banner(vm2.ip))
        assert default_route(hv, vm2) == NET_A[1]
    finally:
        stop.set()
        watcher.join(10)
    assert not watcher.is_alive()


def container_started_at(vm: VM) -> str:
    container: Any = docker.from_env().containers.get(f"nmpilab-{REGION}-{vm.uuid}")
    return str(container.attrs["State"]["StartedAt"])


@pytest.mark.slow
def test_network_removed_while_stopped_is_given_back(
    hv: docker_vm.DockerHypervisor, image: str
) -> None:
    network = (str(uuid.uuid4()), "10.197.5.0/24", "10.197.5.1")
    vm = make_vm(hv, image, 40, networks=(network,))
    try:
        hv.stop(vm.uuid, timeout=10)
        docker.from_env().networks.get(hv.network_name(network[0])).remove()
        hv.repair_networks(vm.uuid, vm.interfaces)
        hv.start(vm.uuid)
        wait_for(
            "the port's address and MAC",
            lambda: interfaces_inside(hv, vm) == {vm.ip: vm.interfaces[0].mac},
        )
        # The route comes a moment after the address on a loaded machine (CI: none yet).
        wait_for("the default route via the gateway", lambda: default_route(hv, vm) == "10.197.5.1")
    finally:
        hv.prune_networks(hv.delete(vm.uuid))


@pytest.mark.slow
def test_delete_removes_container_volume_loops_and_unused_networks(
    hv: docker_vm.DockerHypervisor, image: str, volume_file: Path
) -> None:
    network_id = str(uuid.uuid4())
    network = (network_id, "10.197.4.0/24", "10.197.4.1")
    doomed = make_vm(hv, image, 30, networks=(network,))
    stopped = make_vm(hv, image, 31, networks=(network,))
    hv.stop(stopped.uuid, timeout=10)
    hv.attach_volume(doomed.uuid, "/dev/vdb", str(volume_file))
    sh(hv, doomed, "mkfs.ext4 -q /dev/vdb && mount /dev/vdb /mnt && echo survives > /mnt/f")
    client = docker.from_env()
    container = client.containers.get(f"nmpilab-{REGION}-{doomed.uuid}")
    anonymous = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]
    assert anonymous, "the image declares VOLUME /var/lib/docker"

    networks = hv.delete(doomed.uuid)
    assert networks == [network_id]
    hv.prune_networks(networks)
    assert not hv.exists(doomed.uuid)
    # A stopped instance still uses the network (Docker itself would let it be removed).
    assert hv.network_exists(network_id)
    hv.start(stopped.uuid)
    assert hv.wait_for_boot(stopped.uuid, 60)
    hv.prune_networks(hv.delete(stopped.uuid))
    assert not client.networks.list(names=[hv.network_name(network_id)])
    assert docker_vm.loops_of(str(volume_file)) == []
    for name in anonymous:
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get(name)
    assert hv.delete(doomed.uuid) == []  # idempotent
    # The data is in the file: readable after the instance is gone.
    loop = docker_vm.loop_attach(str(volume_file))
    try:
        dump = subprocess.run(
            ["debugfs", "-R", "cat /f", f"/dev/{loop}"], capture_output=True, text=True, check=False
        )
        assert dump.stdout.strip() == "survives", dump.stderr
    finally:
        docker_vm.loop_detach(loop, str(volume_file))


# -- without Docker ------------------------------------------------------------------------------


def test_console_log_is_plain_text() -> None:
    assert docker_vm.strip_console("\x1b[0;32m  OK  \x1b[0m] Started\r\r\nnext\rline") == (
        "  OK  ] Started\nnext\nline"
    )


def test_guest_agent_is_valid_sh(tmp_path: Path) -> None:
    script = tmp_path / "nmpi-lab-guest"
    script.write_text(docker_vm.GUEST_AGENT_SCRIPT)
    check = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    usage = subprocess.run(["sh", str(script), "bogus"], capture_output=True, text=True)
    assert usage.returncode == 2


def test_records_round_trip() -> None:
    devices = [
        docker_vm.BlockDevice("/dev/vdb", "loop3", "/srv/volumes/volume-1.img"),
        docker_vm.BlockDevice("/dev/vdc", "loop7", "/srv/with space/volume-2.img"),
    ]
    text = docker_vm.devices_record(devices).decode()
    assert text.startswith("# nmpi-lab:")
    assert docker_vm.parse_devices_record(text) == devices
    iface = docker_vm.Interface(
        "n1", "s1", "10.0.0.0/24", "10.0.0.1", "10.0.0.5", "FA:16:3E:00:00:01"
    )
    other = docker_vm.Interface("n2", "s2", "10.0.1.0/24", None, "10.0.1.5", "fa:16:3e:00:00:02")
    assert docker_vm.network_record([iface, other]).decode().splitlines()[1:] == [
        "iface 10.0.0.5 fa:16:3e:00:00:01 10.0.0.1 yes",
        "iface 10.0.1.5 fa:16:3e:00:00:02 - no",
    ]


def test_guest_files_enable_the_units() -> None:
    scripts = cloud_config.render(
        instance_id="i", default_user_name="debian", public_keys=[], user_data=b""
    )
    files = {f.path: f for f in docker_vm.guest_files(scripts, b"")}
    units = "/etc/systemd/system"
    for unit, target in (
        ("nmpi-lab-guest-boot.service", "sysinit.target"),
        ("nmpi-lab-guest.service", "sysinit.target"),
        ("nmpi-lab-init.service", "multi-user.target"),
        ("nmpi-lab-final.service", "multi-user.target"),
    ):
        assert f"{units}/{unit}" in files
        assert files[f"{units}/{target}.wants/{unit}"].link == f"{units}/{unit}"
    assert files[docker_vm.GUEST_AGENT].mode == 0o755
    assert files[docker_vm.INIT_SCRIPT].content == scripts.init.encode()
    assert "Before=ssh.service" in files[f"{units}/nmpi-lab-init.service"].content.decode()


@pytest.mark.parametrize("name", ["/dev/vdb", "/dev/sdc", "/dev/xvdb"])
def test_device_names_like_nova_s_are_accepted(name: str) -> None:
    docker_vm._check_mountpoint(name)


@pytest.mark.parametrize("name", ["/dev/vdb1", "vdb", "/dev/../etc/passwd", "/dev/vd b"])
def test_other_device_names_are_refused(name: str) -> None:
    with pytest.raises(docker_vm.LabError):
        docker_vm._check_mountpoint(name)


@pytest.mark.slow
def test_release_loops_under_a_folder(tmp_path: Path) -> None:
    files = []
    for name in ("volume-1.img", "volume-2.img"):
        path = tmp_path / name
        path.write_bytes(b"")
        os.truncate(path, 16 * 1024 * 1024)
        files.append(path)
    loops = sorted(docker_vm.loop_attach(str(path)) for path in files)
    outside = tmp_path.parent / f"{tmp_path.name}-other.img"
    outside.write_bytes(b"")
    os.truncate(outside, 16 * 1024 * 1024)
    other = docker_vm.loop_attach(str(outside))
    try:
        assert sorted(docker_vm.release_loops_under(str(tmp_path))) == loops
        assert all(docker_vm.loops_of(str(path)) == [] for path in files)
        assert docker_vm.loops_of(str(outside)) == [other]
    finally:
        docker_vm.loop_detach(other)
        outside.unlink()
