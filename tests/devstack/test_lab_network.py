"""The lab network on the real kernel: floating IPs, security groups, cuts, frozen VMs.

No OpenStack here: two network agents (regions "nmpinet" and "nmpinet2") are fed Neutron-like
JSON by the test, and act on VM containers (the lab image, systemd and an inner Docker
engine) on Docker networks this module creates, as the lab hypervisor would:

  nmpilab-nmpinet-ext   198.19.240.0/24  region nmpinet's external network (floating IPs)
  nmpilab-nmpinet-a     198.19.241.0/24  its subnet A: vm1 (.5), vm2 (.6)
  nmpilab-nmpinet-b     198.19.242.0/24  its subnet B: vm3 (.7), on one router with A
  nmpilab-nmpinet2-c    198.19.243.0/24  region nmpinet2's subnet: vm4 (.9)
  nmpilab-nmpinet2-ext  198.19.244.0/24  region nmpinet2's external network

All inside the lab's own supernet (addresses.LAB_SUPERNET) and clear of the ranges
addresses.py hands out, so this can run beside a running lab. Everything made here
(containers, networks, chains) is removed at the end.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nmpi_devstack import addresses, chaos
from nmpi_lab_openstack import netagent

from tests.devstack.labcloud import wait_until
from tests.support import read_images_env

pytestmark = pytest.mark.slow

IMAGE = f"{read_images_env()['NMPI_IMAGE_VM']}:{read_images_env()['NMPI_IMAGE_TAG']}"
PREFIX = "nmpinet"
REGION, OTHER = "nmpinet", "nmpinet2"
NETS = {
    "ext": ("nmpilab-nmpinet-ext", "198.19.240.0/24", REGION, None),
    "a": ("nmpilab-nmpinet-a", "198.19.241.0/24", REGION, "net-a"),
    "b": ("nmpilab-nmpinet-b", "198.19.242.0/24", REGION, "net-b"),
    "c": ("nmpilab-nmpinet2-c", "198.19.243.0/24", OTHER, "net-c"),
    "ext2": ("nmpilab-nmpinet2-ext", "198.19.244.0/24", OTHER, None),
}
VMS = {  # name: (network, fixed IP, region)
    "vm1": ("a", "198.19.241.5", REGION),
    "vm2": ("a", "198.19.241.6", REGION),
    "vm3": ("b", "198.19.242.7", REGION),
    "vm4": ("c", "198.19.243.9", OTHER),
}
FIP1 = "198.19.240.20"  # region nmpinet's floating IP: vm1, later vm2
FIP4 = "198.19.244.20"  # region nmpinet2's floating IP: vm4
ROUTER_GW = "198.19.240.2"
ROUTER2_GW = "198.19.244.2"
LAB_RULE = {"direction": "ingress", "ethertype": "IPv4", "remote_ip_prefix": "198.18.0.0/15"}


def _docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def _exec(vm: str, *command: str, check: bool = True) -> str:
    return _docker("exec", f"{PREFIX}-{vm}", *command, check=check)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    wait_until(what, check, timeout, interval=0.3)


def tcp_open(address: str, port: int, timeout: float = 1.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_name(address: str, port: int = 8000, timeout: float = 2.0) -> str | None:
    """The name a VM's listener serves (who answered), from the host; None if nothing did."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/name", timeout=timeout) as r:
            return str(r.read().decode().strip())
    except OSError:
        return None


def http_name_from(vm: str, address: str, port: int = 8000) -> str | None:
    """The same, from inside a VM."""
    code = (
        "import urllib.request,sys\n"
        "try:\n"
        f"    print(urllib.request.urlopen('http://{address}:{port}/name', timeout=2)"
        ".read().decode().strip())\n"
        "except OSError:\n"
        "    sys.exit(3)\n"
    )
    result = subprocess.run(
        ["docker", "exec", f"{PREFIX}-{vm}", "python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def tcp_open_from(vm: str, address: str, port: int) -> bool:
    code = f"import socket; socket.create_connection(('{address}', {port}), timeout=1.5)"
    result = subprocess.run(
        ["docker", "exec", f"{PREFIX}-{vm}", "python3", "-c", code],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


# --- the Neutron each agent reads ----------------------------------------------------------


def _port(vm: str, security_groups: list[str], port_security: bool = True) -> dict[str, Any]:
    net, ip, _ = VMS[vm]
    return {
        "id": f"port-{vm}",
        "device_owner": "compute:nova",
        "device_id": f"{PREFIX}-uuid-{vm}",
        "mac_address": "fa:16:3e:00:00:00",
        "fixed_ips": [{"subnet_id": f"sub-{net}", "ip_address": ip}],
        "security_groups": security_groups,
        "port_security_enabled": port_security,
        "network_id": f"net-{net}",
    }


def _router_port(router: str, net: str, ip: str) -> dict[str, Any]:
    return {
        "id": f"port-{router}-{net}",
        "device_owner": "network:router_interface",
        "device_id": router,
        "fixed_ips": [{"subnet_id": f"sub-{net}", "ip_address": ip}],
    }


def _subnet(key: str) -> dict[str, Any]:
    return {"id": f"sub-{key}", "network_id": f"net-{key}", "cidr": NETS[key][1], "ip_version": 4}


def _fip(fid: str, address: str, vm: str | None, network: str) -> dict[str, Any]:
    return {
        "id": fid,
        "floating_ip_address": address,
        "fixed_ip_address": VMS[vm][1] if vm else None,
        "port_id": f"port-{vm}" if vm else None,
        "floating_network_id": network,
    }


def _router(rid: str, network: str, subnet: str, address: str) -> dict[str, Any]:
    gateway = {"subnet_id": subnet, "ip_address": address}
    return {
        "id": rid,
        "external_gateway_info": {"network_id": network, "external_fixed_ips": [gateway]},
    }


def neutron_region() -> dict[str, list[dict[str, Any]]]:
    """Region nmpinet: vm1 and vm2 on A, vm3 on B, A and B on router r1; FIP1 -> vm1."""
    return {
        "subnets": [_subnet("ext"), _subnet("a"), _subnet("b")],
        "routers": [_router("r1", "net-ext", "sub-ext", ROUTER_GW)],
        "ports": [
            _router_port("r1", "a", "198.19.241.1"),
            _router_port("r1", "b", "198.19.242.1"),
            _port("vm1", ["web"]),
            _port("vm2", ["web"], port_security=False),
            _port("vm3", ["web"]),
        ],
        "floating_ips": [_fip("fip1", FIP1, "vm1", "net-ext")],
        "security_groups": [
            {
                "id": "web",
                "security_group_rules": [
                    {**LAB_RULE, "protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
                    {**LAB_RULE, "protocol": "tcp", "port_range_min": 8000, "port_range_max": 8000},
                    {**LAB_RULE, "protocol": "icmp"},
                ],
            }
        ],
    }


def neutron_other() -> dict[str, list[dict[str, Any]]]:
    """Region nmpinet2: vm4 on C behind router r2; FIP4 -> vm4."""
    return {
        "subnets": [_subnet("ext2"), _subnet("c")],
        "routers": [_router("r2", "net-ext2", "sub-ext2", ROUTER2_GW)],
        "ports": [_router_port("r2", "c", "198.19.243.1"), _port("vm4", ["any"])],
        "floating_ips": [_fip("fip4", FIP4, "vm4", "net-ext2")],
        "security_groups": [{"id": "any", "security_group_rules": [LAB_RULE]}],
    }


class StaticNeutron:
    def __init__(self, data: dict[str, list[dict[str, Any]]]) -> None:
        self.data = data

    def read(self, previous: netagent.Snapshot | None = None) -> netagent.Snapshot:
        return netagent.Snapshot(**json.loads(json.dumps(self.data)))


class Lab:
    """The two regions' agents and what the test changes in their Neutron."""

    def __init__(self, client: Any) -> None:
        self.neutron = StaticNeutron(neutron_region())
        self.neutron2 = StaticNeutron(neutron_other())
        self.log = io.StringIO()
        self.agent = netagent.NetAgent(
            REGION, self.neutron, client, log=netagent.JsonLog(REGION, self.log)
        )
        self.agent2 = netagent.NetAgent(
            OTHER, self.neutron2, client, log=netagent.JsonLog(OTHER, self.log)
        )

    def sync(self) -> None:
        """One round of each agent, which must go without error."""
        for agent in (self.agent, self.agent2):
            assert agent.round() == 0, self.log.getvalue()[-2000:]

    def rule(self, **fields: Any) -> dict[str, Any]:
        rules: list[dict[str, Any]] = self.neutron.data["security_groups"][0][
            "security_group_rules"
        ]
        rule = {**LAB_RULE, **fields}
        rules.append(rule)
        return rule


def _start_vm(name: str) -> None:
    net, ip, region = VMS[name]
    _docker(
        "run",
        "-d",
        "--name",
        f"{PREFIX}-{name}",
        "--hostname",
        name,
        "--network",
        NETS[net][0],
        "--ip",
        ip,
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/run/lock",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--cap-add",
        "ALL",
        "--cap-drop",
        "SYS_RESOURCE",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--label",
        "nmpi.lab=1",
        "--label",
        f"nmpi.lab.region={region}",
        "--label",
        f"nmpi.lab.instance-uuid={PREFIX}-uuid-{name}",
        "--label",
        f"nmpi.lab.instance-name={PREFIX}-{name}",
        IMAGE,
    )


def _listeners(name: str) -> None:
    """HTTP on 8000 (allowed) and 8080 (not allowed), each serving the VM's name."""
    _exec(name, "sh", "-c", f"mkdir -p /srv/www && echo {name} > /srv/www/name")
    for port in (8000, 8080):
        _exec(
            name,
            "systemd-run",
            f"--unit=nmpinet-http-{port}",
            "python3",
            "-m",
            "http.server",
            str(port),
            "--directory",
            "/srv/www",
        )


def _wait_booted(name: str) -> None:
    def sshd_active() -> bool:
        return _exec(name, "systemctl", "is-active", "ssh", check=False) == "active"

    wait_for(f"{name}'s systemd to start sshd", sshd_active)


def _cleanup() -> None:
    for name in VMS:
        _docker("rm", "-f", "-v", f"{PREFIX}-{name}", check=False)
    _docker("rm", "-f", "-v", f"{PREFIX}-victim", check=False)
    for net, *_ in NETS.values():
        _docker("network", "rm", net, check=False)


def _cleanup_rules(client: Any) -> None:
    """Remove the test regions' host chains (agents) and cuts (chaos)."""
    for region in (REGION, OTHER):
        log = netagent.JsonLog(region, io.StringIO())
        netagent.NetAgent(region, None, client, log=log).cleanup()
        saved = subprocess.run(
            ["iptables-save", "-t", "raw"], capture_output=True, text=True, check=True
        ).stdout
        text = chaos.uncut_restore_text(region, chaos.raw_chains(saved))
        if text:
            subprocess.run(["iptables-restore", "--noflush"], input=text, text=True, check=True)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0 or shutil.which("docker") is None:
        pytest.skip("needs root and Docker")
    if not _docker("images", "-q", IMAGE):
        pytest.skip(f"image {IMAGE} is not built (make images)")
    for _, cidr, _, _ in NETS.values():
        assert ipaddress.IPv4Network(cidr).subnet_of(addresses.LAB_SUPERNET)
    import docker  # type: ignore[import-untyped]

    client = docker.from_env()
    _cleanup()
    _cleanup_rules(client)
    try:
        for name, cidr, region, network_id in NETS.values():
            labels = ["--label", "nmpi.lab=1", "--label", f"nmpi.lab.region={region}"]
            if network_id:
                labels += ["--label", f"nmpi.lab.network-id={network_id}"]
            gateway = str(ipaddress.IPv4Network(cidr).network_address + 1)
            _docker("network", "create", "--subnet", cidr, "--gateway", gateway, *labels, name)
        for name in VMS:
            _start_vm(name)
        for name in VMS:
            _wait_booted(name)
            _listeners(name)
        lab = Lab(client)
        lab.sync()
        yield lab
    finally:
        _cleanup()
        _cleanup_rules(client)
        client.close()


# --- floating IPs ---------------------------------------------------------------------------


def test_floating_ip_reaches_its_instance_from_the_host(lab: Lab) -> None:
    wait_for("the listener of vm1 via its floating IP", lambda: http_name(FIP1) == "vm1")
    assert tcp_open(FIP1, 22), "sshd of vm1 is not reachable through the floating IP"
    if shutil.which("conntrack"):
        # The host's address on the external network reaches vm1 as itself (not masqueraded
        # to vm1's gateway): a security group rule for the lab's ranges means what it says.
        flows = subprocess.run(
            ["conntrack", "-L", "-p", "tcp", "--orig-dst", FIP1, "--reply-src", VMS["vm1"][1]],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        assert "dst=198.19.240.1 " in flows, flows


def test_floating_ip_reaches_its_instance_from_the_other_region(lab: Lab) -> None:
    assert http_name_from("vm4", FIP1) == "vm1"
    if shutil.which("conntrack"):
        # vm4 left its region as its own floating IP (what vm1's security group sees).
        flows = subprocess.run(
            ["conntrack", "-L", "-p", "tcp", "--orig-src", VMS["vm4"][1], "--orig-dst", FIP1],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        assert f"dst={FIP4}" in flows, flows


def test_fixed_ips_are_not_reachable_from_the_other_region(lab: Lab) -> None:
    assert not tcp_open_from("vm4", VMS["vm1"][1], 8000)


def test_subnets_of_one_router_reach_each_other_without_nat(lab: Lab) -> None:
    assert http_name_from("vm3", VMS["vm1"][1]) == "vm1"
    assert http_name_from("vm3", FIP1) == "vm1"  # its own region's floating IP
    assert http_name_from("vm2", FIP1) == "vm1"  # from the same subnet (hairpin)
    assert http_name_from("vm1", FIP1) == "vm1"  # an instance reaches its own floating IP


def test_floating_ip_moves_with_its_traffic(lab: Lab) -> None:
    assert http_name(FIP1) == "vm1"
    fip = lab.neutron.data["floating_ips"][0]
    fip.update(_fip("fip1", FIP1, "vm2", "net-ext"))
    moved = time.monotonic()
    lab.sync()
    try:
        wait_for("traffic to follow the floating IP", lambda: http_name(FIP1) == "vm2", 5)
        assert time.monotonic() - moved < 5
        assert http_name_from("vm4", FIP1) == "vm2"
    finally:
        fip.update(_fip("fip1", FIP1, "vm1", "net-ext"))
        lab.sync()
    wait_for("traffic to come back", lambda: http_name(FIP1) == "vm1", 5)


def test_unassociated_floating_ip_answers_nothing(lab: Lab) -> None:
    fip = lab.neutron.data["floating_ips"][0]
    fip.update(_fip("fip1", FIP1, None, "net-ext"))
    lab.sync()
    try:
        assert http_name(FIP1, timeout=1.5) is None
    finally:
        fip.update(_fip("fip1", FIP1, "vm1", "net-ext"))
        lab.sync()
    wait_for("the floating IP to answer again", lambda: http_name(FIP1) == "vm1", 5)


# --- security groups ------------------------------------------------------------------------


def test_security_group_blocks_a_port_it_does_not_allow(lab: Lab) -> None:
    assert (
        _exec(
            "vm1", "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 8080))"
        )
        == ""
    )
    assert not tcp_open(FIP1, 8080), "8080 answered through the floating IP without a rule"
    assert not tcp_open_from("vm3", VMS["vm1"][1], 8080), "8080 answered vm3 without a rule"
    assert http_name_from("vm3", VMS["vm1"][1]) == "vm1", "8000 is allowed"
    # The port of vm2 has port security disabled: nothing filtered.
    assert http_name_from("vm3", VMS["vm2"][1], 8080) == "vm2"
    rule = lab.rule(protocol="tcp", port_range_min=8080, port_range_max=8080)
    lab.sync()
    try:
        assert http_name(FIP1, 8080) == "vm1"
    finally:
        lab.neutron.data["security_groups"][0]["security_group_rules"].remove(rule)
        lab.sync()
    assert not tcp_open(FIP1, 8080)


def test_security_group_filters_ports_published_by_the_inner_engine(lab: Lab) -> None:
    _exec(
        "vm1",
        "sh",
        "-c",
        "mkdir -p /tmp/bb/www && cp /bin/busybox /tmp/bb/busybox && echo inner > /tmp/bb/www/name"
        " && tar -C /tmp/bb -c . | docker import - nmpinet-bb >/dev/null"
        " && docker run -d --name nmpinet-inner -p 8081:8081 nmpinet-bb"
        " /busybox httpd -f -p 8081 -h /www >/dev/null",
    )
    wait_for(
        "the inner container's listener",
        lambda: (
            _exec(
                "vm1",
                "python3",
                "-c",
                "import urllib.request as u;"
                "print(u.urlopen('http://127.0.0.1:8081/name').read().decode())",
                check=False,
            )
            == "inner"
        ),
    )
    assert not tcp_open(FIP1, 8081), "a port published inside the VM bypassed its security group"
    rule = lab.rule(protocol="tcp", port_range_min=8081, port_range_max=8081)
    lab.sync()
    try:
        assert http_name(FIP1, 8081) == "inner"
    finally:
        lab.neutron.data["security_groups"][0]["security_group_rules"].remove(rule)
        lab.sync()


def test_a_restarted_instance_gets_its_filter_back(lab: Lab) -> None:
    _docker("restart", "-t", "1", f"{PREFIX}-vm3")
    wait_for(
        "vm3's systemd",
        lambda: _exec("vm3", "systemctl", "is-active", "ssh", check=False) == "active",
    )
    _listeners("vm3")
    lab.sync()
    assert _exec("vm3", "iptables", "-t", "mangle", "-S", "PREROUTING").count("NMPILAB-SG") == 1
    wait_for("vm3's listener", lambda: http_name_from("vm1", VMS["vm3"][1]) == "vm3")
    assert not tcp_open_from("vm1", VMS["vm3"][1], 8080)


# --- chaos: a region cut off, a frozen or killed VM -----------------------------------------


@pytest.fixture
def regions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test regions as the lab's address plan knows regions."""
    for name, ext in ((REGION, "198.19.240.0/24"), (OTHER, "198.19.244.0/24")):
        region = addresses.Region(
            name=name,
            api_host="127.0.0.1",
            external_cidr=ipaddress.IPv4Network(ext),
            tenant_range=ipaddress.IPv4Network(ext),
        )
        monkeypatch.setitem(addresses.REGIONS, name, region)


@pytest.mark.usefixtures("regions")
def test_cut_region_isolates_it_while_inside_traffic_flows(lab: Lab) -> None:
    assert http_name(FIP1) == "vm1"
    chaos.cut_region(REGION)
    try:
        chaos.cut_region(REGION)  # twice is harmless
        lab.sync()  # and the agents' rounds leave the cut alone
        assert http_name(FIP1, timeout=1.5) is None, "the host still reaches the cut region"
        assert not tcp_open(VMS["vm1"][1], 8000), "the host reaches a fixed IP of the cut region"
        assert http_name_from("vm4", FIP1) is None, "the other region reaches the cut one"
        assert http_name_from("vm1", FIP4) is None, "the cut region reaches the other one"
        assert http_name_from("vm2", VMS["vm1"][1]) == "vm1", "same subnet"
        assert http_name_from("vm3", VMS["vm1"][1]) == "vm1", "across the region's subnets"
        assert http_name_from("vm3", FIP1) == "vm1", "the region's own floating IP"
        assert http_name(FIP4) == "vm4", "the other region is not cut"
    finally:
        chaos.restore_region(REGION)
    chaos.restore_region(REGION)  # twice is harmless
    wait_for("the region to come back", lambda: http_name(FIP1) == "vm1", 10)
    assert http_name_from("vm4", FIP1) == "vm1"


def test_freeze_and_thaw_an_instance(lab: Lab) -> None:
    assert http_name(VMS["vm2"][1]) == "vm2"
    chaos.freeze_instance(f"{PREFIX}-vm2")
    try:
        chaos.freeze_instance(f"{PREFIX}-uuid-vm2")  # by uuid, and twice is harmless
        assert http_name(VMS["vm2"][1], timeout=2) is None, "a frozen VM answered"
    finally:
        chaos.thaw_instance(f"{PREFIX}-vm2")
    assert http_name(VMS["vm2"][1]) == "vm2"


def test_kill_an_instance(lab: Lab) -> None:
    _docker(
        "run", "-d", "--name", f"{PREFIX}-victim", "--label", "nmpi.lab=1",
        "--label", f"nmpi.lab.region={REGION}",
        "--label", f"nmpi.lab.instance-name={PREFIX}-victim",
        "--label", f"nmpi.lab.instance-uuid={PREFIX}-uuid-victim", "--network", "none",
        "--entrypoint", "sleep", IMAGE, "600",
    )  # fmt: skip
    chaos.freeze_instance(f"{PREFIX}-victim")
    chaos.kill_instance(f"{PREFIX}-victim")  # a frozen VM can be killed
    state = _docker("inspect", "-f", "{{.State.Status}}", f"{PREFIX}-victim")
    assert state == "exited"
    with pytest.raises(chaos.ChaosError, match="not running"):
        chaos.freeze_instance(f"{PREFIX}-victim")


def test_unknown_targets_are_clear_errors() -> None:
    with pytest.raises(chaos.ChaosError, match="no lab instance named 'nmpinet-nobody'"):
        chaos.kill_instance(f"{PREFIX}-nobody")
    with pytest.raises(chaos.ChaosError, match="unknown region"):
        chaos.cut_region("atlantis")
