"""Building blocks of the suites that run against the local OpenStack (lab/, nmpi-devstack).

A `Site` is one region's test resources (a network behind a router to `public`, a security
group allowing SSH from the lab and everything from its own members, servers, floating IPs),
named after a prefix so that suites running against the same lab never touch each other's.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import openstack
import openstack.config.loader
import openstack.connection
import openstack.exceptions
import pytest

LAB_RANGES = "198.18.0.0/15"  # nmpi_devstack.addresses: the lab's own ranges
DNS_SERVER = "198.18.0.1"
T = TypeVar("T")


def wait_until(
    what: str, check: Callable[[], T | None], timeout: float = 120.0, interval: float = 1.0
) -> T:
    """Poll check() until it returns a true value; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:  # keep polling; report the last failure
            last = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last seen: {last!r})")


def tcp_open(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Site:
    """One region's test resources: a network behind a router, a security group, servers."""

    region: str
    prefix: str  # every resource of the suite is named <prefix>-...: suites never collide
    conn: Any  # openstack.connection.Connection: its proxies are only partly typed
    cidr: str
    network: Any = None
    subnet: Any = None
    router: Any = None
    group: Any = None
    servers: dict[str, Any] = field(default_factory=dict)
    floating_ips: dict[str, Any] = field(default_factory=dict)

    def port_of(self, server: Any) -> Any:
        return next(iter(self.conn.network.ports(device_id=server.id)))

    def fixed_ip(self, server: Any) -> str:
        return str(self.port_of(server).fixed_ips[0]["ip_address"])

    def container(self, server: Any) -> str:
        """The lab hypervisor's container for a server (the "VM"), for console-like access."""
        return f"nmpilab-{self.region}-{server.id}"


def connect(clouds: Path, cloud: str) -> Any:
    config = openstack.config.loader.OpenStackConfig(config_files=[str(clouds)])
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


def ssh(key: Path, address: str, command: str, jump: str | None = None, timeout: float = 60) -> str:
    """Run a command on an instance as the image's default user; return its output."""
    options = [
        "-i",
        str(key),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
    ]
    if jump:
        proxy = " ".join(["ssh", *options, "-W", "%h:%p", f"debian@{jump}"])
        options += ["-o", f"ProxyCommand={proxy}"]
    result = subprocess.run(
        ["ssh", *options, f"debian@{address}", command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"ssh {address} {command!r}: exit {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout


def purge(site: Site) -> None:
    """Remove this suite's resources (left over by an interrupted run, or at the end)."""
    conn = site.conn
    for server in conn.compute.servers(name=f"^{site.prefix}-"):
        conn.compute.delete_server(server)
        with contextlib.suppress(openstack.exceptions.ResourceNotFound):
            conn.compute.wait_for_delete(server, wait=120)
    for fip in conn.network.ips(description=site.prefix):
        conn.network.delete_ip(fip)
    for volume in conn.block_storage.volumes(name=f"{site.prefix}-vol"):
        if volume.status == "available":
            conn.block_storage.delete_volume(volume)
    for router in conn.network.routers(name=f"{site.prefix}-router"):
        for port in conn.network.ports(
            device_id=router.id, device_owner="network:router_interface"
        ):
            conn.network.remove_interface_from_router(router, port=port.id)
        conn.network.delete_router(router)
    for network in conn.network.networks(name=f"{site.prefix}-net"):
        conn.network.delete_network(network)
    for group in conn.network.security_groups(name=f"{site.prefix}-sg"):
        conn.network.delete_security_group(group)
    if conn.compute.find_keypair(site.prefix):
        conn.compute.delete_keypair(site.prefix)


def build_site(site: Site, key: Path, server_names: list[str], with_fip: list[str]) -> Site:
    conn = site.conn
    purge(site)
    conn.compute.create_keypair(name=site.prefix, public_key=key.with_suffix(".pub").read_text())
    public = conn.network.find_network("public")
    assert public is not None, f"region {site.region} has no external network 'public'"
    site.network = conn.network.create_network(name=f"{site.prefix}-net")
    site.subnet = conn.network.create_subnet(
        network_id=site.network.id, name=f"{site.prefix}-subnet", ip_version=4, cidr=site.cidr
    )
    site.router = conn.network.create_router(
        name=f"{site.prefix}-router", external_gateway_info={"network_id": public.id}
    )
    conn.network.add_interface_to_router(site.router, subnet=site.subnet.id)
    site.group = conn.network.create_security_group(
        name=f"{site.prefix}-sg", description=site.prefix
    )
    # SSH from the lab's ranges, and anything from members of the same group.
    conn.network.create_security_group_rule(
        security_group_id=site.group.id,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=22,
        port_range_max=22,
        remote_ip_prefix=LAB_RANGES,
    )
    conn.network.create_security_group_rule(
        security_group_id=site.group.id,
        direction="ingress",
        ethertype="IPv4",
        remote_group_id=site.group.id,
    )
    image = conn.image.find_image("debian-12")
    flavor = conn.compute.find_flavor("m1.small")
    assert image is not None, "the lab's seed image debian-12 is missing"
    assert flavor is not None, "the lab's seed flavor m1.small is missing"
    for name in server_names:
        site.servers[name] = conn.compute.create_server(
            name=f"{site.prefix}-{name}",
            image_id=image.id,
            flavor_id=flavor.id,
            networks=[{"uuid": site.network.id}],
            key_name=site.prefix,
            security_groups=[{"name": site.group.name}],
        )
    for name, server in site.servers.items():
        site.servers[name] = conn.compute.wait_for_server(server, wait=300)
    for name in with_fip:
        port = site.port_of(site.servers[name])
        site.floating_ips[name] = conn.network.create_ip(
            floating_network_id=public.id, port_id=port.id, description=site.prefix
        )
    for name, fip in site.floating_ips.items():
        address = fip.floating_ip_address
        wait_until(f"SSH of {name} at {address}", partial(tcp_open, address, 22), 180)
        wait_until(f"login to {name}", partial(ssh, key, address, "echo ok"), 120)
    return site
