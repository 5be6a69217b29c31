"""The platform as site.yml deployed it on the local OpenStack (inventories/lab).

Everything is read from where the deployment keeps it: groups and variables from the
inventory (`ansible-inventory`), addresses from the clouds (the servers' floating IPs), the CA
from the lab's generated folder. Used by `make lab` (nmpi_lab.info prints how to reach the
platform) and by the acceptance suite (tests/lab/test_site_on_lab.py).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import openstack.config.loader
import openstack.connection
from nmpi_devstack.paths import REPO_ROOT as REPO

INVENTORY = REPO / "inventories" / "lab"
GENERATED = INVENTORY / "generated"
DEMO_USER = "demo"
DEMO_COLLAB = "demo-collab"
# pgBackRest at the repository host, in its server's container.
PGBACKREST = "sudo docker exec nmpi-pgbackrest pgbackrest --stanza=nmpi"
# A platform administrator (the job queue's admin collab), who decides on resource requests.
ADMIN_USER = "lab-admin"
ADMIN_COLLAB = "neuromorphic-platform-admin"
# The monitoring UIs (playbooks/group_vars/all/ports.yml, inventories/lab secrets.yml).
PROMETHEUS_PORT = 9090
# The hardware sites' output servers (playbooks/group_vars/all/ports.yml: emulator_outputs).
EMULATOR_OUTPUTS_PORT = 8443
ALERTMANAGER_PORT = 9093
MONITORING_USER = "operator"
MONITORING_PASSWORD_FILE = GENERATED / "secrets" / "monitoring_web"


@dataclass(frozen=True)
class Host:
    name: str
    site: str
    groups: frozenset[str]
    public_ip: str


@dataclass(frozen=True)
class Deployment:
    public_name: str  # without the final dot
    zone: str
    ca_file: Path
    ssh_key: Path
    hosts: dict[str, Host]

    @property
    def url(self) -> str:
        return f"https://{self.public_name}"

    def host(self, site: str, group: str) -> Host:
        for host in self.hosts.values():
            if host.site == site and group in host.groups:
                return host
        raise LookupError(f"no host of group {group!r} at {site!r} in {INVENTORY}")

    @property
    def dns_server(self) -> Host:
        return next(h for h in self.hosts.values() if "dns_server" in h.groups)

    @property
    def hardware_sites(self) -> list[Host]:
        """The emulated hardware sites' hosts (group hardware_sites), if the lab has them."""
        return [h for h in self.hosts.values() if "hardware_sites" in h.groups]

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    # --- the monitoring server (group monitoring, the witness) --------------------------

    @property
    def monitoring(self) -> Host:
        return next(h for h in self.hosts.values() if "monitoring" in h.groups)

    @property
    def prometheus_url(self) -> str:
        return f"https://{self.monitoring.public_ip}:{PROMETHEUS_PORT}"

    @property
    def alertmanager_url(self) -> str:
        return f"https://{self.monitoring.public_ip}:{ALERTMANAGER_PORT}"

    @staticmethod
    def monitoring_password() -> str:
        """The monitoring UIs' password (user MONITORING_USER), generated at the first deploy."""
        return MONITORING_PASSWORD_FILE.read_text().strip()

    def monitoring_get(self, url: str, timeout: float = 10) -> Any:
        """GET a JSON document from Prometheus or Alertmanager with the password."""
        token = base64.b64encode(f"{MONITORING_USER}:{self.monitoring_password()}".encode())
        return self.get_json(url, timeout=timeout, authorization=f"Basic {token.decode()}")

    def prometheus_query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        query = urllib.parse.urlencode({"query": expr})
        status, body = self.monitoring_get(f"{self.prometheus_url}/api/v1/query?{query}")
        if status != 200:
            raise ConnectionError(f"Prometheus answered {status} to {expr!r}: {body}")
        return list(body["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (firing, not silenced or inhibited ones too)."""
        status, body = self.monitoring_get(f"{self.alertmanager_url}/api/v2/alerts")
        if status != 200:
            raise ConnectionError(f"Alertmanager answered {status}: {body}")
        return list(body)

    # --- what the acceptance checks read ------------------------------------------------

    def resolve(self, name: str | None = None) -> list[str]:
        """A records of `name` (default: the public name) from the witness's DNS server."""
        query = dns.message.make_query((name or self.public_name) + ".", dns.rdatatype.A)
        answer = dns.query.tcp(query, self.dns_server.public_ip, timeout=5)
        if answer.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            # SERVFAIL while named loads its zones is "no answer", not "the name has no address".
            rcode = dns.rcode.to_text(answer.rcode())
            raise RuntimeError(f"{self.dns_server.public_ip} answered {rcode}")
        return sorted(
            item.address for rrset in answer.answer for item in rrset if rrset.rdtype == 1
        )

    def get_json(
        self,
        url: str,
        server_name: str | None = None,
        timeout: float = 10,
        authorization: str | None = None,
    ) -> Any:
        """GET a JSON document over TLS checked against the lab CA (any status code)."""
        request = urllib.request.Request(url)
        if server_name:
            request.add_header("Host", server_name)
        if authorization:
            request.add_header("Authorization", authorization)
        handler = urllib.request.HTTPSHandler(context=self.tls_context())
        opener = urllib.request.build_opener(handler)
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def readyz(self, site: str) -> int:
        """Status of /readyz through the site's web floating IP (checked by address SAN)."""
        status, _ = self.get_json(f"https://{self.host(site, 'web').public_ip}/readyz")
        return int(status)

    def patroni_leader(self) -> Host:
        """The host of Patroni's current leader."""
        members = self.patroni_cluster()["members"]
        return self.hosts[str(next(m["name"] for m in members if m["role"] == "leader"))]

    def database_sql(self, host: Host, query: str, database: str = "nmpi") -> str:
        """One query's result (psql -At) on a member, as the container's postgres user."""
        psql = f"sudo docker exec nmpi-patroni psql -X -At -v ON_ERROR_STOP=1 -d {database}"
        return self.ssh(host, f'{psql} -c "{query}"').strip()

    # --- pgBackRest's repository (group pgbackrest_repo, the witness) -------------------

    @property
    def backup_repository(self) -> Host:
        return next(h for h in self.hosts.values() if "pgbackrest_repo" in h.groups)

    def backup_stanza(self) -> dict[str, Any]:
        """`pgbackrest info` of the stanza at the repository host."""
        out = self.ssh(self.backup_repository, f"{PGBACKREST} --output=json info", timeout=300)
        stanzas = json.loads(out)
        if not isinstance(stanzas, list) or len(stanzas) != 1:
            raise RuntimeError(f"pgbackrest info: expected one stanza, got {stanzas!r}")
        return dict(stanzas[0])

    def patroni_cluster(self, timeout: float = 10) -> dict[str, Any]:
        """Patroni's /cluster, from the first database member that answers."""
        errors = []
        for site in ("castor", "jusuf"):
            address = self.host(site, "db").public_ip
            try:
                _, body = self.get_json(f"https://{address}:8008/cluster", timeout=timeout)
                return dict(body)
            except OSError as exc:
                errors.append(f"{address}: {exc}")
        raise ConnectionError("no Patroni REST API answered: " + "; ".join(errors))

    def ssh(self, host: Host, command: str, timeout: float = 120) -> str:
        """Run a command on a host as the deploying user; SSH trusts only the host keys that
        provisioning recorded from the instances' console logs (as site.yml does)."""
        result = subprocess.run(
            [
                "ssh",
                "-i",
                str(self.ssh_key),
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                f"UserKnownHostsFile={GENERATED / 'known_hosts'}",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
                f"debian@{host.public_ip}",
                command,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{host.name}: {command!r} failed: {result.stderr.strip()}")
        return result.stdout

    def demo_token(self) -> str:
        """An API token of the demo user (editor of the demo collab), made once and kept in
        the lab's generated folder (git-ignored)."""
        return self._member_token(
            "demo-token",
            DEMO_USER,
            "--name 'Demo User' --email demo@lab.example",
            DEMO_COLLAB,
            "Demo collab",
            "editor",
        )

    def admin_token(self) -> str:
        """An API token of the lab's platform administrator (administrator of the job queue's
        admin collab), made once and kept in the lab's generated folder (git-ignored)."""
        return self._member_token(
            "admin-token",
            ADMIN_USER,
            "--name 'Lab Administrator'",
            ADMIN_COLLAB,
            "Platform administrators",
            "administrator",
        )

    def _member_token(
        self, file: str, user: str, user_options: str, collab: str, title: str, role: str
    ) -> str:
        """The token kept in GENERATED/file while the platform still knows it; otherwise the
        user, the collab and the membership are made (each command is idempotent) and a new
        30-day token is kept."""
        path = GENERATED / file
        if path.is_file() and self._token_valid(path.read_text().strip()):
            return path.read_text().strip()
        web = self.host("castor", "web")
        cli = "sudo docker exec nmpi-job-queue-1 nmpi-job-queue"
        self.ssh(web, f"{cli} user add {user} {user_options}")
        self.ssh(web, f"{cli} collab add {collab} --title '{title}'")
        self.ssh(web, f"{cli} member add {user} {collab} --role {role}")
        token = self.ssh(web, f"{cli} token create {user} --days 30").strip().splitlines()[-1]
        path.touch(mode=0o600)
        path.write_text(token + "\n")
        return token

    def provider_key(self, provider: str = "chaos-poller", platform: str = "SpiNNaker") -> str:
        """An API key of a hardware provider serving `platform` (what a site's poller uses),
        made once and kept in the lab's generated folder (git-ignored)."""
        path = GENERATED / f"provider-key-{provider}"
        if path.is_file() and self._valid(path.read_text().strip(), "x-api-key"):
            return path.read_text().strip()
        web = self.host("castor", "web")
        cli = "sudo docker exec nmpi-job-queue-1 nmpi-job-queue"
        key = self.ssh(web, f"{cli} provider-key create {provider} --platform {platform}")
        key = key.strip().splitlines()[-1]
        path.touch(mode=0o600)
        path.write_text(key + "\n")
        return key

    def _token_valid(self, token: str) -> bool:
        return self._valid(token, "Authorization")

    def _valid(self, secret: str, header: str) -> bool:
        """Whether the platform knows the token or key (a redeployed lab has a new database)."""
        if not secret:
            return False
        value = f"Bearer {secret}" if header == "Authorization" else secret
        path = "/userinfo" if header == "Authorization" else "/jobs/?size=1"
        request = urllib.request.Request(
            f"https://{self.resolve()[0]}{path}", headers={header: value}
        )
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.tls_context())
        )
        try:
            with opener.open(request, timeout=10) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                return False
            raise

    @contextmanager
    def public_name_resolved(self) -> Iterator[None]:
        """Resolve the public name through the lab's DNS inside this process (the host's
        resolver does not know the lab's zone), so an unmodified client can use the name."""
        original: Callable[..., Any] = socket.getaddrinfo

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(host, str) and host.rstrip(".") == self.public_name:
                host = self.resolve()[0]
            return original(host, *args, **kwargs)

        socket.getaddrinfo = getaddrinfo
        try:
            yield
        finally:
            socket.getaddrinfo = original


def _inventory() -> dict[str, Any]:
    result = subprocess.run(
        ["ansible-inventory", "-i", str(INVENTORY), "--list"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _clouds_file() -> Path:
    default = REPO / ".cache" / "devstack" / "clouds.yaml"
    return Path(os.environ.get("OS_CLIENT_CONFIG_FILE", default))


def load() -> Deployment:
    """The deployment as it is now; LookupError when a server or its floating IP is missing."""
    inventory = _inventory()
    hostvars: dict[str, dict[str, Any]] = inventory["_meta"]["hostvars"]
    groups: dict[str, set[str]] = {}
    for group, body in inventory.items():
        for name in body.get("hosts", []) if isinstance(body, dict) else []:
            groups.setdefault(name, set()).add(group)
    for group in ("web", "db", "witness", "hardware_sites"):  # docker_hosts has children only
        for name in groups:
            if group in groups[name]:
                groups[name].add("docker_hosts")
    config = openstack.config.loader.OpenStackConfig(config_files=[str(_clouds_file())])
    connections: dict[str, Any] = {}
    hosts = {}
    for name, variables in hostvars.items():
        cloud = variables["location_cloud"]
        if cloud not in connections:
            connections[cloud] = openstack.connection.Connection(config=config.get_one(cloud=cloud))
        server = connections[cloud].compute.find_server(name)
        if server is None:
            raise LookupError(f"no server {name} in cloud {cloud}: run `make lab` first")
        addresses = [
            a["addr"]
            for network in server.addresses.values()
            for a in network
            if a.get("OS-EXT-IPS:type") == "floating"
        ]
        if not addresses:
            raise LookupError(f"server {name} in cloud {cloud} has no floating IP")
        hosts[name] = Host(name, variables["nmpi_location"], frozenset(groups[name]), addresses[0])
    some = next(iter(hostvars.values()))
    return Deployment(
        public_name=str(some["nmpi_public_name"]).rstrip("."),
        zone=str(some["nmpi_public_zone"]),
        ca_file=GENERATED / "pki" / "ca.crt",
        ssh_key=GENERATED / "id_ed25519",
        hosts=hosts,
    )
