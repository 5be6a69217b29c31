"""Rendering of every configuration file of the lab (templates in lab/templates).

Rendered at every `up` (cheap, and a changed template or setting takes effect at the next start
of the process that reads it); a file is rewritten only when its content changes. Files hold
passwords: all are 0600.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jinja2

from . import addresses as a
from .credentials import Secrets, write_private
from .paths import TEMPLATES_DIR, Paths
from .settings import Settings

DB_USER = "nmpilab"
RABBIT_USER = "nmpilab"
SHARED_VHOST = "shared"  # glance, designate; each region has a vhost named after it
RNDC_KEY_NAME = "nmpilab-rndc"
KEYSTONE_URL = f"http://{a.SHARED_API_HOST}:{a.PORTS['keystone']}/v3"


def region_databases(region: str) -> list[str]:
    """The databases of one region: no other region or shared service uses them."""
    names = [f"{db}_{region}" for db in ("nova_api", "nova_cell0", "nova", "placement")]
    return [*names, f"neutron_{region}", f"cinder_{region}"]


def databases(regions: Iterable[str]) -> list[str]:
    names = ["keystone", "glance", "designate"]
    for r in regions:
        names += region_databases(r)
    return names


def vhosts() -> list[str]:
    """RabbitMQ's vhosts: the shared one and one per region of the address plan, running or
    not (an idle vhost costs nothing, and adding a region then never restarts the broker,
    which loads them from definitions.json at boot only)."""
    return [SHARED_VHOST, *a.REGIONS]


def compute_host(region: str) -> str:
    """nova-compute's host name: stable, so instances are found again after a restart."""
    return f"{region}-compute"


class Renderer:
    def __init__(
        self, paths: Paths, secrets: Secrets, settings: Settings, regions: Sequence[a.Region]
    ) -> None:
        self.paths = paths
        self.secrets = secrets
        self.settings = settings
        self.regions = tuple(regions)  # the lab's regions: only theirs are rendered
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,  # ini, yaml and named.conf files: nothing to escape
        )

    # --- values shared by the templates -------------------------------------------------
    def db_url(self, name: str) -> str:
        return (
            f"mysql+pymysql://{DB_USER}:{self.secrets.mariadb}@127.0.0.1:{a.MARIADB_PORT}/{name}"
            "?charset=utf8mb4"
        )

    def transport_url(self, vhost: str) -> str:
        return f"rabbit://{RABBIT_USER}:{self.secrets.rabbitmq}@127.0.0.1:{a.RABBITMQ_PORT}/{vhost}"

    def service_auth(self, user: str) -> str:
        """keystoneauth options of a service user (a [nova], [placement], ... section)."""
        return "\n".join(
            [
                "auth_type = password",
                f"auth_url = {KEYSTONE_URL}",
                f"username = {user}",
                f"password = {self.secrets.service}",
                "user_domain_name = Default",
                "project_name = service",
                "project_domain_name = Default",
            ]
        )

    def authtoken(self, user: str) -> str:
        """[keystone_authtoken] of an API: validates users' tokens with its service user."""
        return "\n".join(
            [
                f"www_authenticate_uri = {KEYSTONE_URL}",
                self.service_auth(user),
                "service_token_roles_required = true",
            ]
        )

    def base_context(self) -> dict[str, Any]:
        helpers: dict[str, Callable[[str], str]] = {
            "db_url": self.db_url,
            "authtoken": self.authtoken,
            "service_auth": self.service_auth,
        }
        return {
            **helpers,
            "ports": a.PORTS,
            "shared_host": a.SHARED_API_HOST,
            "logs": self.paths.logs,
            "venv": self.paths.venv,
            "data": self.paths.data,
        }

    # --- output --------------------------------------------------------------------------
    def write(self, dest: Path, text: str) -> None:
        if dest.exists() and dest.read_text() == text:
            return
        write_private(dest, text)

    def copy_shipped(self, project: str, etc: Path) -> None:
        """The api-paste.ini a wheel installs into <venv>/etc/<project>/, next to the config."""
        shipped = self.paths.venv / "etc" / project / "api-paste.ini"
        dest = etc / "api-paste.ini"
        if not dest.exists() or dest.read_bytes() != shipped.read_bytes():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shipped, dest)

    def render(self, template: str, dest: Path, **context: Any) -> None:
        text = self.env.get_template(template).render(**{**self.base_context(), **context})
        self.write(dest, text)

    def uwsgi(
        self,
        dest: Path,
        *,
        name: str,
        host: str,
        port: int,
        module: str,
        threads: int = 2,
        env: dict[str, str] | None = None,
        pyargv: str = "",
    ) -> None:
        self.render(
            "uwsgi.ini.j2",
            dest,
            name=name,
            host=host,
            port=port,
            module=module,
            threads=threads,
            env=env or {},
            pyargv=pyargv,
        )

    # --- the lab ------------------------------------------------------------------------
    def render_all(self) -> None:
        self.infra()
        self.keystone()
        self.glance()
        self.designate()
        for region in self.regions:
            self.region(region)

    def infra(self) -> None:
        p = self.paths
        self.render(
            "my.cnf.j2",
            p.conf("mariadb", "my.cnf"),
            datadir=p.data / "mariadb",
            socket=p.mariadb_socket,
            run=p.run,
            port=a.MARIADB_PORT,
            log=p.log("mariadb"),
        )
        definitions = p.conf("rabbitmq", "definitions.json")
        self.render(
            "rabbitmq.conf.j2",
            p.conf("rabbitmq", "rabbitmq.conf"),
            port=a.RABBITMQ_PORT,
            definitions=definitions,
        )
        self.write(definitions, json.dumps(self.rabbit_definitions(), indent=2) + "\n")
        self.write(p.conf("rabbitmq", "enabled_plugins"), "[].\n")
        self.write(p.conf("rabbitmq", "rabbitmq-env.conf"), "# the lab sets RABBITMQ_* itself\n")
        rndc_key = p.conf("bind", "rndc.key")
        self.render("rndc.key.j2", rndc_key, key_name=RNDC_KEY_NAME, secret=self.secrets.rndc)
        bind_common = {"rndc_key": rndc_key, "key_name": RNDC_KEY_NAME, "rndc_port": a.RNDC_PORT}
        self.render(
            "named.conf.j2",
            p.conf("bind", "named.conf"),
            datadir=p.data / "bind",
            dns_address=a.DNS_ADDRESS,
            dns_port=a.DNS_PORT,
            loopback_port=a.DNS_LOOPBACK_PORT,
            **bind_common,
        )
        self.render("rndc.conf.j2", p.conf("bind", "rndc.conf"), **bind_common)

    def rabbit_definitions(self) -> dict[str, Any]:
        # rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)). The salt is
        # derived from the password so the file only changes when the password does.
        password = self.secrets.rabbitmq.encode()
        salt = hashlib.sha256(b"nmpilab-salt" + password).digest()[:4]
        pw_hash = base64.b64encode(salt + hashlib.sha256(salt + password).digest()).decode()
        return {
            "users": [
                {
                    "name": RABBIT_USER,
                    "password_hash": pw_hash,
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": ["administrator"],
                }
            ],
            "vhosts": [{"name": v} for v in vhosts()],
            "permissions": [
                {"user": RABBIT_USER, "vhost": v, "configure": ".*", "write": ".*", "read": ".*"}
                for v in vhosts()
            ],
        }

    def keystone(self) -> None:
        etc = self.paths.conf("keystone")
        self.render("keystone.conf.j2", etc / "keystone.conf", etc=self.paths.etc)
        self.uwsgi(
            etc / "uwsgi.ini",
            name="keystone",
            host=a.SHARED_API_HOST,
            port=a.PORTS["keystone"],
            module="keystone.wsgi.api",
            threads=4,
            env={"OS_KEYSTONE_CONFIG_DIR": str(etc)},
        )

    def glance(self) -> None:
        etc = self.paths.conf("glance")
        self.render("glance-api.conf.j2", etc / "glance-api.conf")
        self.uwsgi(
            etc / "uwsgi.ini",
            name="glance-api",
            host=a.SHARED_API_HOST,
            port=a.PORTS["glance"],
            module="glance.wsgi.api",
            env={"OS_GLANCE_CONFIG_DIR": str(etc)},
        )

    def designate(self) -> None:
        p = self.paths
        etc = p.conf("designate")
        self.render(
            "designate.conf.j2",
            etc / "designate.conf",
            etc=etc,
            transport_url=self.transport_url(SHARED_VHOST),
        )
        # designate.wsgi.api reads api-paste.ini from its config dir (shipped in the venv)
        self.copy_shipped("designate", etc)
        self.render(
            "pools.yaml.j2",
            etc / "pools.yaml",
            ns_hostname=a.DNS_NS_NAME,
            loopback_port=a.DNS_LOOPBACK_PORT,
            mdns_host=a.SHARED_API_HOST,
            mdns_port=a.PORTS["designate-mdns"],
            rndc_port=a.RNDC_PORT,
            rndc_conf=p.conf("bind", "rndc.conf"),
            dns_address=a.DNS_ADDRESS,
            dns_port=a.DNS_PORT,
        )
        self.uwsgi(
            etc / "uwsgi.ini",
            name="designate-api",
            host=a.SHARED_API_HOST,
            port=a.PORTS["designate"],
            module="designate.wsgi.api",
            env={"OS_DESIGNATE_CONFIG_DIR": str(etc)},
        )

    def region(self, region: a.Region) -> None:
        p = self.paths
        r = region.name
        common = {"region": region, "transport_url": self.transport_url(r)}

        etc = p.conf(r, "placement")
        self.render(
            "placement.conf.j2",
            etc / "placement.conf",
            state_dir=p.region_data(r, "placement"),
            **common,
        )
        self.uwsgi(
            etc / "uwsgi.ini",
            name=f"{r}-placement-api",
            host=region.api_host,
            port=a.PORTS["placement"],
            module="placement.wsgi.api",
            env={"OS_PLACEMENT_CONFIG_DIR": str(etc)},
        )

        etc = p.conf(r, "nova")
        for conf, compute in (("nova.conf", False), ("nova-compute.conf", True)):
            self.render(
                "nova.conf.j2",
                etc / conf,
                compute=compute,
                etc=etc,
                host=compute_host(r),
                state_path=p.region_data(r, "nova"),
                compute_driver=self.settings.compute_driver,
                vm_image=self.settings.vm_image,
                lab_state_dir=p.region_data(r, "nova-lab"),
                **common,
            )
        self.uwsgi(
            etc / "uwsgi.ini",
            name=f"{r}-nova-api",
            host=region.api_host,
            port=a.PORTS["nova"],
            module="nova.wsgi.osapi_compute",
            # nova.wsgi.osapi_compute loads its paste pipeline from the first file listed
            env={"OS_NOVA_CONFIG_DIR": str(etc), "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova.conf"},
        )
        self.copy_shipped("nova", etc)

        etc = p.conf(r, "neutron")
        self.render(
            "neutron.conf.j2",
            etc / "neutron.conf",
            state_path=p.region_data(r, "neutron"),
            service_plugins=self.settings.service_plugins,
            **common,
        )
        self.render(
            "ml2_conf.ini.j2",
            etc / "ml2_conf.ini",
            mechanism_drivers=self.settings.mechanism_drivers,
            **common,
        )
        self.uwsgi(
            etc / "uwsgi.ini",
            name=f"{r}-neutron-api",
            host=region.api_host,
            port=a.PORTS["neutron"],
            module="neutron.wsgi.api",
            env={
                "OS_NEUTRON_CONFIG_DIR": str(etc),
                "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini",
            },
        )

        etc = p.conf(r, "cinder")
        self.render(
            "cinder.conf.j2",
            etc / "cinder.conf",
            etc=etc,
            state_path=p.region_data(r, "cinder"),
            volume_driver=self.settings.volume_driver,
            volumes_dir=p.region_data(r, "volumes"),
            **common,
        )
        self.write(etc / "api-paste.ini", (TEMPLATES_DIR / "cinder-api-paste.ini").read_text())
        # cinder.wsgi.api parses sys.argv: uWSGI's pyargv is the only way to name its config
        self.uwsgi(
            etc / "uwsgi.ini",
            name=f"{r}-cinder-api",
            host=region.api_host,
            port=a.PORTS["cinder"],
            module="cinder.wsgi.api",
            threads=1,
            pyargv=f"--config-file {etc / 'cinder.conf'} --log-file {p.log(f'{r}-cinder-api')}",
        )
