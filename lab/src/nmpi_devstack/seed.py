"""Seed data (idempotent): the image, flavors, external networks and the lab project's quotas."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import openstack.connection
from openstack.block_storage.v3._proxy import Proxy as BlockStorageProxy
from openstack.identity.v3._proxy import Proxy as IdentityProxy

from . import addresses as a
from .paths import Paths

IMAGE_NAME = "debian-12"
# The hypervisor runs every instance from the lab's VM Docker image whatever the Glance image:
# this one is a placeholder (zeros), so nothing has to be downloaded or built.
IMAGE_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Flavor:
    name: str
    ram: int  # MiB
    vcpus: int
    disk: int  # GiB


FLAVORS = (
    Flavor("m1.tiny", 512, 1, 5),
    Flavor("m1.small", 2048, 1, 20),
    Flavor("m1.medium", 4096, 2, 40),
)

# The lab project's quotas (above the defaults where a two-site deployment needs more).
COMPUTE_QUOTAS: dict[str, Any] = {"instances": 20, "cores": 40, "ram": 96 * 1024}
VOLUME_QUOTAS: dict[str, Any] = {"volumes": 20, "snapshots": 20, "gigabytes": 1000}
NETWORK_QUOTAS: dict[str, Any] = {"floating_ips": 20, "networks": 20, "routers": 10, "ports": 200}


def ensure_image(paths: Paths, conn: openstack.connection.Connection) -> str:
    if conn.image.find_image(IMAGE_NAME) is not None:
        return "exists"
    placeholder = paths.data / f"{IMAGE_NAME}.raw"
    if not placeholder.exists() or placeholder.stat().st_size != IMAGE_SIZE:
        placeholder.write_bytes(b"\0" * IMAGE_SIZE)
    conn.image.create_image(
        name=IMAGE_NAME,
        filename=str(placeholder),
        disk_format="raw",
        container_format="bare",
        visibility="public",
        os_distro="debian",
        os_version="12",
        use_import=False,
        validate_checksum=False,
        allow_duplicates=False,
    )
    return "created"


def ensure_flavors(conn: openstack.connection.Connection) -> list[str]:
    created = []
    existing = {f.name for f in conn.compute.flavors(is_public=None)}
    for f in FLAVORS:
        if f.name not in existing:
            conn.compute.create_flavor(
                name=f.name, ram=f.ram, vcpus=f.vcpus, disk=f.disk, is_public=True
            )
            created.append(f.name)
    return created


def ensure_external_network(conn: openstack.connection.Connection, region: a.Region) -> str:
    """`public`: flat provider network on physnet ext, the region's floating IPs."""
    net = conn.network.find_network(region.external_network_name)
    status = "exists"
    if net is None:
        net = conn.network.create_network(
            name=region.external_network_name,
            is_router_external=True,
            provider_network_type="flat",
            provider_physical_network="ext",
            description=f"External network of region {region.name} (floating IPs)",
        )
        status = "created"
    if not list(conn.network.subnets(network_id=net.id)):
        start, end = region.floating_ip_pool
        conn.network.create_subnet(
            network_id=net.id,
            name=f"{region.external_network_name}-subnet",
            ip_version=4,
            cidr=str(region.external_cidr),
            gateway_ip=str(region.external_gateway),
            allocation_pools=[{"start": str(start), "end": str(end)}],
            is_dhcp_enabled=False,
        )
        status = "created"
    return status


def ensure_quotas(conn: openstack.connection.Connection) -> None:
    identity = cast(IdentityProxy, conn.identity)
    project = identity.find_project("lab", domain_id="default")
    if project is None:
        return
    conn.compute.update_quota_set(project.id, **COMPUTE_QUOTAS)
    cast(BlockStorageProxy, conn.block_storage).update_quota_set(project.id, **VOLUME_QUOTAS)
    conn.network.update_quota(project.id, **NETWORK_QUOTAS)


def fingerprint(regions: Sequence[a.Region]) -> str:
    """What seed data the lab wants: a change (a region added, too) makes `up` seed again."""
    spec = [IMAGE_NAME, FLAVORS, COMPUTE_QUOTAS, VOLUME_QUOTAS, NETWORK_QUOTAS]
    spec += [(r.name, str(r.external_cidr)) for r in regions]
    return hashlib.sha256(repr(spec).encode()).hexdigest()
