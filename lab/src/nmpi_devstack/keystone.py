"""Keystone: bootstrap, the catalog of the lab's regions, projects and users, and clouds.yaml.

One Keystone serves every region. Each region has its own identity endpoints (services look
Keystone up in their own region) and its own Placement, Nova, Neutron and Cinder at the
region's loopback address; Glance and Designate are shared but registered in every region.
Everything here must exist before any Nova service starts: they cache the catalog. A region
of the address plan the lab no longer runs loses its endpoints (and its Keystone region).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import openstack
import openstack.connection
import yaml
from openstack.identity.v3._proxy import Proxy as IdentityProxy

from . import addresses as a
from .commands import run
from .configs import KEYSTONE_URL
from .credentials import Secrets, write_private
from .markers import Markers
from .paths import Paths

SERVICE_USERS = ("nova", "neutron", "cinder", "glance", "placement", "designate")
INTERFACES = ("public", "internal")


def cloud_names(regions: Sequence[a.Region]) -> list[str]:
    """The clouds of clouds.yaml: lab-<region> (user lab) for each region, then lab-admin."""
    return [*(f"lab-{r.name}" for r in regions), "lab-admin"]


@dataclass(frozen=True)
class CatalogService:
    name: str
    type: str
    description: str
    path: str = ""  # appended to http://host:port
    port_key: str = ""
    shared: bool = False  # at 127.0.0.1 for every region


CATALOG = (
    CatalogService("keystone", "identity", "Identity", "/v3", "keystone", shared=True),
    CatalogService("placement", "placement", "Placement", "", "placement"),
    CatalogService("nova", "compute", "Compute", "/v2.1", "nova"),
    CatalogService("neutron", "network", "Networking", "", "neutron"),
    CatalogService("cinderv3", "volumev3", "Block Storage (v3)", "/v3/%(project_id)s", "cinder"),
    CatalogService("cinder", "block-storage", "Block Storage", "/v3/%(project_id)s", "cinder"),
    CatalogService("glance", "image", "Image", "", "glance", shared=True),
    CatalogService("designate", "dns", "DNS", "", "designate", shared=True),
)


def endpoint_url(service: CatalogService, region: a.Region) -> str:
    host = a.SHARED_API_HOST if service.shared else region.api_host
    return f"http://{host}:{a.PORTS[service.port_key]}{service.path}"


def manage(paths: Paths, *args: str, env: Mapping[str, str] | None = None) -> str:
    return run(
        [
            paths.bin / "keystone-manage",
            "--config-file",
            paths.conf("keystone", "keystone.conf"),
            "--log-file",
            paths.log("keystone-manage"),
            *args,
        ],
        paths.log("keystone-manage"),
        env={**os.environ, **env} if env else None,
        what=f"keystone-manage {args[0]}",
    )


def prepare(paths: Paths, secrets: Secrets, marker: Markers, primary: a.Region) -> None:
    """Keys, schema and bootstrap (each done once; `marker` records completed steps).

    The bootstrap registers Keystone in the primary region; ensure_catalog does the rest."""
    etc = paths.conf("keystone")
    if not any((etc / "fernet-keys").glob("0")):
        manage(paths, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root")
    if not any((etc / "credential-keys").glob("0")):
        manage(paths, "credential_setup", "--keystone-user", "root", "--keystone-group", "root")
    marker.once("keystone-db-sync", lambda: manage(paths, "db_sync"), version_of="keystone")
    url = endpoint_url(CATALOG[0], primary)
    marker.once(
        "keystone-bootstrap",
        lambda: manage(
            paths,
            "bootstrap",
            "--bootstrap-username",
            "admin",
            "--bootstrap-project-name",
            "admin",
            "--bootstrap-role-name",
            "admin",
            "--bootstrap-service-name",
            "keystone",
            "--bootstrap-region-id",
            primary.name,
            "--bootstrap-admin-url",
            url,
            "--bootstrap-internal-url",
            url,
            "--bootstrap-public-url",
            url,
            # From the environment, not argv: out of `ps` and of the command line the log records.
            env={"OS_BOOTSTRAP_PASSWORD": secrets.admin},
        ),
    )


def connect(
    secrets: Secrets, region: str = "castor", *, admin: bool = True
) -> openstack.connection.Connection:
    user, password = ("admin", secrets.admin) if admin else ("lab", secrets.lab)
    return openstack.connect(
        load_yaml_config=False,
        load_envvars=False,
        auth_type="password",
        auth={
            "auth_url": KEYSTONE_URL,
            "username": user,
            "password": password,
            "project_name": user,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        region_name=region,
        identity_api_version="3",
        interface="public",
        api_timeout=60,
    )


def desired_state(secrets: Secrets, regions: Sequence[a.Region]) -> str:
    """A fingerprint of what ensure_catalog creates: unchanged means nothing to do."""
    spec = {
        "regions": [r.name for r in regions],
        "catalog": [(s.name, s.type, [endpoint_url(s, r) for r in regions]) for s in CATALOG],
        "users": SERVICE_USERS,
        "secrets": [secrets.service, secrets.lab],
        "version": 3,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def ensure_catalog(
    conn: openstack.connection.Connection, secrets: Secrets, regions: Sequence[a.Region]
) -> None:
    """Regions, services, endpoints, projects, users and role assignments (idempotent).

    Endpoints (and the Keystone region) of a region of the address plan that is not among
    `regions` are deleted: the lab stopped running it."""
    ident = cast(IdentityProxy, conn.identity)  # identity_api_version is 3
    wanted = {r.name for r in regions}
    existing_regions = {r.id for r in ident.regions()}
    for region in regions:
        if region.name not in existing_regions:
            ident.create_region(id=region.name, description=f"nmpi lab region {region.name}")

    services = {(s.name, s.type): s for s in ident.services()}
    endpoints = list(ident.endpoints())
    for endpoint in endpoints:
        if endpoint.region_id in a.REGIONS and endpoint.region_id not in wanted:
            ident.delete_endpoint(endpoint)
    for name in existing_regions:
        if name in a.REGIONS and name not in wanted:
            ident.delete_region(name)
    for entry in CATALOG:
        service = services.get((entry.name, entry.type))
        if service is None:
            service = ident.create_service(
                name=entry.name, type=entry.type, description=entry.description
            )
        for region in regions:
            url = endpoint_url(entry, region)
            for interface in INTERFACES:
                found = [
                    e
                    for e in endpoints
                    if e.service_id == service.id
                    and e.region_id == region.name
                    and e.interface == interface
                ]
                if not found:
                    ident.create_endpoint(
                        service_id=service.id, region_id=region.name, interface=interface, url=url
                    )
                elif found[0].url != url:
                    ident.update_endpoint(found[0], url=url)

    domain = ident.find_domain("default")
    assert domain is not None
    roles = {r.name: r for r in ident.roles()}
    for role in ("admin", "member", "reader", "service"):
        if role not in roles:
            roles[role] = ident.create_role(name=role)

    def project(name: str, description: str) -> Any:
        found = ident.find_project(name, domain_id=domain.id)
        return found or ident.create_project(
            name=name, domain_id=domain.id, description=description
        )

    def user(name: str, password: str, proj: Any, *role_names: str) -> None:
        found = ident.find_user(name, domain_id=domain.id)
        if found is None:
            found = ident.create_user(
                name=name, password=password, domain_id=domain.id, default_project_id=proj.id
            )
        else:
            ident.update_user(found, password=password)
        for role in role_names:
            ident.assign_project_role_to_user(proj, found, roles[role])  # type: ignore[no-untyped-call]

    service_project = project("service", "OpenStack services of the lab")
    for name in SERVICE_USERS:
        user(name, secrets.service, service_project, "admin", "service")
    user("lab", secrets.lab, project("lab", "The lab's tenant: what site.yml provisions"), "member")


def clouds_yaml(secrets: Secrets, regions: Sequence[a.Region]) -> dict[str, Any]:
    def auth(user: str, password: str) -> dict[str, str]:
        return {
            "auth_url": KEYSTONE_URL,
            "username": user,
            "password": password,
            "project_name": user,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        }

    common = {"identity_api_version": 3, "interface": "public"}
    clouds: dict[str, Any] = {}
    for region in regions:
        clouds[f"lab-{region.name}"] = {
            "auth": auth("lab", secrets.lab),
            "region_name": region.name,
            **common,
        }
    # openstacksdk's default region is the first listed: the primary one
    clouds["lab-admin"] = {
        "auth": auth("admin", secrets.admin),
        "regions": [r.name for r in regions],
        **common,
    }
    return {"clouds": clouds}


def write_clouds_yaml(paths: Paths, secrets: Secrets, regions: Sequence[a.Region]) -> None:
    text = (
        "# Written by nmpi-devstack: the lab's clouds (generated passwords; do not commit).\n"
        "# export OS_CLIENT_CONFIG_FILE="
        + str(paths.clouds_yaml)
        + "\n"
        + yaml.safe_dump(clouds_yaml(secrets, regions), sort_keys=False)
    )
    if not paths.clouds_yaml.exists() or paths.clouds_yaml.read_text() != text:
        write_private(paths.clouds_yaml, text)
