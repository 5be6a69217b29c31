"""Acceptance of the local OpenStack's regions, through their public APIs (openstacksdk).

Everything here is what a role or nmpi-failover will do on Castor and JUSUF: networks,
routers, security groups, key pairs, servers reached over SSH through floating IPs, volumes
formatted inside an instance and moved to another, a floating IP moved with its traffic,
Designate records served by DNS, and a region cut off and restored. When the lab runs the
witness region too (`nmpi-devstack up --regions castor,jusuf,witness`), that it reaches both
sites and outlives either one's cut.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import dns.resolver
import openstack.exceptions
import pytest
import yaml

from tests.devstack.labcloud import (
    DNS_SERVER,
    LAB_RANGES,
    Site,
    build_site,
    connect,
    purge,
    ssh,
    tcp_open,
    wait_until,
)
from tests.support import REPO, tool_env

# In the pytest process that runs every suite of the local OpenStack (scripts/run-tests).
pytestmark = [pytest.mark.slow, pytest.mark.lab]

PREFIX = "nmpitest"


@pytest.fixture(scope="module")
def castor(openstack_lab: Path, ssh_key: Path) -> Iterator[Site]:
    site = Site("castor", PREFIX, connect(openstack_lab, "lab-castor"), "10.81.251.0/24")
    try:
        yield build_site(site, ssh_key, ["a", "b"], with_fip=["a"])
    finally:
        purge(site)


@pytest.fixture(scope="module")
def jusuf(openstack_lab: Path, ssh_key: Path) -> Iterator[Site]:
    site = Site("jusuf", PREFIX, connect(openstack_lab, "lab-jusuf"), "10.82.251.0/24")
    try:
        yield build_site(site, ssh_key, ["c"], with_fip=["c"])
    finally:
        purge(site)


@pytest.fixture(scope="module")
def witness(openstack_lab: Path, ssh_key: Path) -> Iterator[Site]:
    if "lab-witness" not in yaml.safe_load(openstack_lab.read_text())["clouds"]:
        pytest.skip("the lab runs without the witness (up --regions castor,jusuf,witness)")
    site = Site("witness", PREFIX, connect(openstack_lab, "lab-witness"), "10.83.251.0/24")
    try:
        yield build_site(site, ssh_key, ["w"], with_fip=["w"])
    finally:
        purge(site)


def test_regions_are_isolated(castor: Site, jusuf: Site) -> None:
    assert castor.network.id != jusuf.network.id
    with pytest.raises(openstack.exceptions.ResourceNotFound):
        jusuf.conn.network.get_network(castor.network.id)
    with pytest.raises(openstack.exceptions.ResourceNotFound):
        castor.conn.compute.get_server(jusuf.servers["c"].id)


def test_server_is_reachable_over_ssh_with_its_identity(castor: Site, ssh_key: Path) -> None:
    server = castor.servers["a"]
    fip = castor.floating_ips["a"].floating_ip_address
    assert ssh(ssh_key, fip, "hostname").strip() == server.name
    assert f"inet {castor.fixed_ip(server)}/" in ssh(ssh_key, fip, "ip -4 -o addr show")
    # The key pair went to the default user, who has sudo like on a cloud image.
    assert ssh(ssh_key, fip, "sudo -n id -u").strip() == "0"
    console = castor.conn.compute.get_server_console_output(server)["output"]
    assert console.strip(), "the console log is empty"


def test_floating_ip_status_follows_association(castor: Site) -> None:
    fip = castor.conn.network.get_ip(castor.floating_ips["a"].id)
    assert fip.status == "ACTIVE"
    public = castor.conn.network.find_network("public")
    spare = castor.conn.network.create_ip(floating_network_id=public.id, description=PREFIX)
    try:
        assert castor.conn.network.get_ip(spare.id).status == "DOWN"
    finally:
        castor.conn.network.delete_ip(spare)


def test_volume_data_survives_reattach_to_another_server(castor: Site, ssh_key: Path) -> None:
    conn = castor.conn
    a, b = castor.servers["a"], castor.servers["b"]
    fip = castor.floating_ips["a"].floating_ip_address
    b_ip = castor.fixed_ip(b)
    volume = conn.block_storage.create_volume(size=1, name=f"{PREFIX}-vol")
    conn.block_storage.wait_for_status(volume, "available", wait=120)
    try:
        attachment = conn.compute.create_volume_attachment(a, volume_id=volume.id)
        conn.block_storage.wait_for_status(volume, "in-use", wait=120)
        device = attachment.device
        ssh(
            ssh_key,
            fip,
            f"sudo mkfs.ext4 -q {device} && sudo mkdir -p /mnt/data"
            f" && sudo mount {device} /mnt/data"
            " && echo kept-across-servers | sudo tee /mnt/data/proof && sudo umount /mnt/data",
        )
        conn.compute.delete_volume_attachment(a, volume)
        conn.block_storage.wait_for_status(volume, "available", wait=120)
        assert "proof" not in ssh(ssh_key, fip, f"ls {device} 2>&1 || true")

        attachment = conn.compute.create_volume_attachment(b, volume_id=volume.id)
        conn.block_storage.wait_for_status(volume, "in-use", wait=120)
        found = ssh(
            ssh_key,
            b_ip,
            f"sudo mkdir -p /mnt/data && sudo mount {attachment.device} /mnt/data"
            " && cat /mnt/data/proof && sudo umount /mnt/data",
            jump=fip,
        )
        assert found.strip() == "kept-across-servers"
        conn.compute.delete_volume_attachment(b, volume)
        conn.block_storage.wait_for_status(volume, "available", wait=120)
    finally:
        conn.block_storage.delete_volume(volume)


def test_floating_ip_moves_with_its_traffic(castor: Site, ssh_key: Path) -> None:
    conn = castor.conn
    a, b = castor.servers["a"], castor.servers["b"]
    fip = castor.floating_ips["a"]
    address = fip.floating_ip_address
    conn.network.update_ip(fip, port_id=castor.port_of(b).id)
    try:
        moved = time.monotonic()
        wait_until(
            "traffic to the floating IP to reach the new server",
            lambda: ssh(ssh_key, address, "hostname").strip() == b.name,
            timeout=60,
        )
        print(f"floating IP moved: traffic follows after {time.monotonic() - moved:.1f}s")
        assert conn.network.get_ip(fip.id).status == "ACTIVE"
    finally:
        conn.network.update_ip(fip, port_id=castor.port_of(a).id)
        wait_until(
            "traffic to return to the first server",
            lambda: ssh(ssh_key, address, "hostname").strip() == a.name,
            timeout=60,
        )


def test_security_group_refuses_a_port_it_does_not_allow(castor: Site, ssh_key: Path) -> None:
    conn = castor.conn
    address = castor.floating_ips["a"].floating_ip_address
    ssh(
        ssh_key,
        address,
        "sudo systemd-run --unit nmpitest-http python3 -m http.server 8080 >/dev/null 2>&1 || true",
    )
    wait_until("the listener inside the server", lambda: "8080" in ssh(ssh_key, address, "ss -ltn"))
    assert not tcp_open(address, 8080), "port 8080 answered without a security group rule"
    rule = conn.network.create_security_group_rule(
        security_group_id=castor.group.id,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=8080,
        port_range_max=8080,
        remote_ip_prefix=LAB_RANGES,
    )
    try:
        wait_until(
            "port 8080 to open after the rule was added", lambda: tcp_open(address, 8080), 30
        )
    finally:
        conn.network.delete_security_group_rule(rule)
    wait_until("port 8080 to close again", lambda: not tcp_open(address, 8080), 30)


def test_floating_ip_reachable_from_the_other_region(
    castor: Site, jusuf: Site, ssh_key: Path
) -> None:
    castor_fip = castor.floating_ips["a"].floating_ip_address
    jusuf_fip = jusuf.floating_ips["c"].floating_ip_address
    probe = f"timeout 5 bash -c '</dev/tcp/{castor_fip}/22' && echo open"
    assert ssh(ssh_key, jusuf_fip, probe).strip() == "open"


def test_designate_record_resolves_from_host_and_instances(castor: Site, ssh_key: Path) -> None:
    conn = castor.conn
    zone_name = f"{PREFIX}-zone.example."
    for old in conn.dns.zones(name=zone_name):
        conn.dns.delete_zone(old)
        wait_until("the old zone to go", lambda: not list(conn.dns.zones(name=zone_name)), 60)
    zone = conn.dns.create_zone(name=zone_name, email="ops@example.org", ttl=60)
    try:
        wait_until("the zone to become ACTIVE", lambda: conn.dns.get_zone(zone).status == "ACTIVE")
        target = castor.floating_ips["a"].floating_ip_address
        conn.dns.create_recordset(zone, name=f"nmpi.{zone_name}", type="A", records=[target])
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [DNS_SERVER]
        resolver.lifetime = 3

        def answer() -> str | None:
            try:
                return str(resolver.resolve(f"nmpi.{zone_name}", "A")[0])
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
                return None

        assert wait_until("the record to resolve on the lab DNS", answer, 90) == target
        inside = ssh(ssh_key, target, f"busybox nslookup nmpi.{zone_name.rstrip('.')} {DNS_SERVER}")
        assert target in inside
    finally:
        conn.dns.delete_zone(zone)


def devstack(*args: str) -> None:
    subprocess.run(["nmpi-devstack", *args], cwd=REPO, env=tool_env(), check=True, timeout=120)


def test_region_cut_off_and_restored(castor: Site, jusuf: Site, ssh_key: Path) -> None:
    castor_fip = castor.floating_ips["a"].floating_ip_address
    jusuf_fip = jusuf.floating_ips["c"].floating_ip_address
    b_ip = castor.fixed_ip(castor.servers["b"])
    inside_a = castor.container(castor.servers["a"])
    devstack("cut", "castor")
    try:
        assert not tcp_open(castor_fip, 22), "castor's floating IP answers the host while cut off"
        probe = f"timeout 5 bash -c '</dev/tcp/{castor_fip}/22' && echo open || echo closed"
        assert ssh(ssh_key, jusuf_fip, probe).strip() == "closed"
        # Inside the region, traffic still flows (checked from the instance's console).
        local = subprocess.run(
            ["docker", "exec", inside_a, "timeout", "5", "bash", "-c", f"</dev/tcp/{b_ip}/22"],
            capture_output=True,
            check=False,
        )
        assert local.returncode == 0, "traffic inside castor stopped while it was cut off"
    finally:
        devstack("restore", "castor")
    wait_until("castor to be reachable again", lambda: tcp_open(castor_fip, 22), 30)
    assert ssh(ssh_key, jusuf_fip, f"timeout 5 bash -c '</dev/tcp/{castor_fip}/22' && echo open")


def test_witness_reaches_both_sites_and_outlives_either_cut(
    castor: Site, jusuf: Site, witness: Site, ssh_key: Path
) -> None:
    fips = {
        "castor": castor.floating_ips["a"].floating_ip_address,
        "jusuf": jusuf.floating_ips["c"].floating_ip_address,
        "witness": witness.floating_ips["w"].floating_ip_address,
    }

    def probe(source: str, target: str) -> str:
        """From an instance of one region to SSH at another's floating IP: open or closed."""
        check = f"timeout 5 bash -c '</dev/tcp/{fips[target]}/22' && echo open || echo closed"
        return ssh(ssh_key, fips[source], check).strip()

    for site in ("castor", "jusuf"):
        assert probe(site, "witness") == "open", f"{site} does not reach the witness"
        assert probe("witness", site) == "open", f"the witness does not reach {site}"
    for cut, other in (("castor", "jusuf"), ("jusuf", "castor")):
        devstack("cut", cut)
        try:
            assert tcp_open(fips["witness"], 22), f"the host lost the witness with {cut}"
            assert probe("witness", other) == "open", f"witness -> {other} while {cut} is cut"
            assert probe(other, "witness") == "open", f"{other} -> witness while {cut} is cut"
            assert probe("witness", cut) == "closed", f"the witness reaches {cut} while cut"
        finally:
            devstack("restore", cut)
        back = partial(tcp_open, fips[cut], 22)
        wait_until(f"{cut} to be reachable again", back, 30)


def test_stop_start_and_reboot_act_on_the_instance(castor: Site, ssh_key: Path) -> None:
    conn = castor.conn
    server = castor.servers["a"]
    address = castor.floating_ips["a"].floating_ip_address
    conn.compute.stop_server(server)
    conn.compute.wait_for_server(server, status="SHUTOFF", wait=120)
    assert not tcp_open(address, 22)
    conn.compute.start_server(server)
    conn.compute.wait_for_server(server, status="ACTIVE", wait=120)
    wait_until("SSH after start", lambda: ssh(ssh_key, address, "hostname").strip(), 120)
    started = ssh(ssh_key, address, "systemctl show -p ActiveEnterTimestampMonotonic sshd")
    conn.compute.reboot_server(server, "SOFT")
    wait_until(
        "sshd to restart after the reboot",
        lambda: (
            ssh(ssh_key, address, "systemctl show -p ActiveEnterTimestampMonotonic sshd") != started
        ),
        180,
    )
    # A container "VM" shares the host's kernel: sshd started again is the reboot's proof.
    conn.compute.wait_for_server(server, status="ACTIVE", wait=120)
