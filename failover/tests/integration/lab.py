"""The database-HA lab the nmpi-failover integration tests run on: real etcd, Patroni, BIND9.

One `Lab` is two sites (castor, jusuf) and a witness, each a Docker network of its own, plus a
"wan" network that carries the traffic between them (etcd peers, replication, Patroni's REST
calls). Every container sits on its site's network and on the wan; the host reaches every
container directly on both (Docker bridges), so the tests and the daemon act from the host as
if from the witness. All networks are `internal`: nothing in the lab can reach beyond them.

    site      containers (site network .N, wan .M)
    castor    etcd (.11, .11)  castor-db-1 Patroni+PostgreSQL 15 (.21, .12)  web (.31, .13)
    jusuf     etcd (.11, .21)  jusuf-db-1  Patroni+PostgreSQL 15 (.21, .22)  web (.31, .23)
    witness   etcd (.11, .31)  BIND9 for lab.example. with the TSIG key (.53, .32)

The addresses handed to tests and to the daemon's config are the site-network ones (the
witness's management path); the members find each other on the wan. The web tier of a site is
the real job-queue API serving HTTPS (gunicorn with the lab CA's certificate) when the
nmpi/job-queue image is built, else a small HTTPS /readyz responder (readyz_responder.py)
with the same meaning: 200 when the database leader is writable from inside that site.

Failures are simulated per site with `kill_site(name, mode)`:
  isolate    every container of the site leaves every network (its processes keep running):
             a site that lost its network, or its power as seen from outside. Default.
  partition  the site's containers leave the wan only: cut off from the other site and the
             witness's etcd, still reachable from the host (the daemon) on the site network.
  pause      `docker pause`: hung hosts (the kernel still completes TCP handshakes).
  crash      `docker kill` (SIGKILL); `restore_site` starts the containers again.

Everything created is named `nmpi-it-<lab id>-...` and labelled `nmpi-it.lab=<lab id>`;
`close()` removes it (with the containers' volumes).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import os
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import dns.message
import dns.query
import dns.rcode
import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import docker.types  # type: ignore[import-untyped]
import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[3]
RESPONDER = Path(__file__).resolve().parent / "readyz_responder.py"

SITES = ("castor", "jusuf")
WITNESS = "witness"
LOCATIONS = (*SITES, WITNESS)
LABEL = "nmpi-it.lab"
OWNER_LABEL = "nmpi-it.owner"

SERVER_NAME = "nmpi.lab.example"
ZONE = "lab.example."
RECORD = "nmpi.lab.example."
TSIG_KEY_NAME = "nmpi-failover."
TSIG_ALGORITHM = "hmac-sha256"
DB_NAME = "nmpi"
DB_USER = "nmpi"
WEB_PORT = 8443

KillMode = Literal["isolate", "partition", "pause", "crash"]
WebKind = Literal["job-queue", "responder"]
T = TypeVar("T")

# Host part of each container's addresses: (site network, wan).
_ETCD_HOST = {"castor": (11, 11), "jusuf": (11, 21), "witness": (11, 31)}
_DB_HOST = {"castor": (21, 12), "jusuf": (21, 22)}
_WEB_HOST = {"castor": (31, 13), "jusuf": (31, 23)}
_BIND_HOST = (53, 32)


class LabError(RuntimeError):
    """The lab could not be brought to the asked state; the message says what was seen."""


@dataclass(frozen=True)
class Node:
    """One container of the lab."""

    role: str  # etcd, db, web, bind
    site: str  # castor, jusuf, witness
    container: str  # Docker name
    site_ip: str  # on the site's network: what the host and the daemon use
    wan_ip: str  # on the wan: what the other members use


@dataclass(frozen=True)
class WebEndpoint:
    """A site's web tier as the daemon probes it (stands for the site's floating IP)."""

    probe_url: str  # https://<address>:8443/readyz
    address: str  # what the public DNS name points at while the site is active


@dataclass
class Timings:
    """Seconds each phase of `start()` took, for the tests to print."""

    phases: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = time.monotonic() - started

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.1f}s" for k, v in self.phases.items())


def read_images_env() -> dict[str, str]:
    """images/images.env as a dict (the image names and the tag)."""
    env: dict[str, str] = {}
    for line in (REPO / "images" / "images.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def image_ref(directory: str) -> str:
    env = read_images_env()
    name = env[f"NMPI_IMAGE_{directory.upper().replace('-', '_')}"]
    return f"{name}:{env['NMPI_IMAGE_TAG']}"


def wait_until(
    what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5
) -> T:
    """Call `probe` until it returns something other than None (exceptions count as None)."""
    deadline = time.monotonic() + timeout
    last: str = "no answer yet"
    while True:
        try:
            value = probe()
        except Exception as error:  # the lab is coming up: anything may fail for a while
            value = None
            last = f"{type(error).__name__}: {error}"
        else:
            if value is not None:
                return value
            last = "condition not met"
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what} ({last})")
        time.sleep(interval)


def _owner_id() -> str:
    """Who created a lab: host, PID namespace and PID, so a sweep only judges its own kind."""
    namespace = os.readlink("/proc/self/ns/pid") if os.path.exists("/proc/self/ns/pid") else "?"
    return f"{socket.gethostname()}|{namespace}|{os.getpid()}"


def _owner_gone(owner: str) -> bool:
    host, namespace, pid = [*owner.split("|"), "", ""][:3]
    mine_host, mine_namespace, _ = _owner_id().split("|")
    if host != mine_host or namespace != mine_namespace or not pid.isdigit():
        return False  # another machine's or sandbox's lab: never ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def sweep_stale_labs(client: Any) -> list[str]:
    """Remove labs whose creating process (on this host, in this PID namespace) is gone."""
    stale: set[str] = set()
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        owner = container.labels.get(OWNER_LABEL, "")
        if _owner_gone(owner):
            stale.add(container.labels[LABEL])
    for network in client.networks.list(filters={"label": LABEL}):
        labels = network.attrs.get("Labels") or {}
        if _owner_gone(labels.get(OWNER_LABEL, "")):
            stale.add(labels[LABEL])
    for lab_id in sorted(stale):
        _remove_lab_resources(client, lab_id)
    return sorted(stale)


def _remove_lab_resources(client: Any, lab_id: str) -> None:
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}={lab_id}"}):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
    for network in client.networks.list(filters={"label": f"{LABEL}={lab_id}"}):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()


# --- TLS and TSIG material --------------------------------------------------------------------


def _write_private_key(key: ec.EllipticCurvePrivateKey, path: Path, mode: int) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(mode)


def make_test_ca(directory: Path, server_ips: list[str]) -> tuple[Path, Path, Path]:
    """A lab CA and one server certificate for SERVER_NAME and the web addresses.

    Returns (ca.pem, server.crt, server.key); the key is world-readable on purpose (a lab key,
    read by the web containers' unprivileged users) and lives in the lab's private directory.
    """
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nmpi-infra lab test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(SERVER_NAME)]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "lab-ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    tls = directory / "tls"
    tls.mkdir(exist_ok=True)
    tls.chmod(0o755)
    cert_file = tls / "server.crt"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert_file.chmod(0o644)
    key_file = tls / "server.key"
    _write_private_key(key, key_file, 0o644)
    return ca_file, cert_file, key_file


# --- the lab ----------------------------------------------------------------------------------


class Lab:
    """The lab's containers and networks, its addresses, and the failures it can simulate.

    Build it with `Lab(workdir)`, then `start()` (or use it as a context manager); `close()`
    removes everything. The attributes below are valid after `start()`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        client: Any = None,
        lab_id: str | None = None,
        web: WebKind | Literal["auto"] = "auto",
        patroni_ttl: int = 20,
        patroni_loop_wait: int = 2,
        patroni_retry_timeout: int = 6,
        initial_dns_site: str | None = "castor",
    ) -> None:
        self.workdir = workdir
        self.client: Any = client if client is not None else docker.from_env(timeout=120)
        self.id = lab_id or secrets.token_hex(3)
        self.prefix = f"nmpi-it-{self.id}-"
        self.timings = Timings()
        self._patroni = (patroni_ttl, patroni_loop_wait, patroni_retry_timeout)
        self._initial_dns_site = initial_dns_site
        self._web_choice = web
        self._labels = {LABEL: self.id, OWNER_LABEL: _owner_id()}
        self._killed: dict[str, KillMode] = {}
        self._http = httpx.Client(timeout=3.0, trust_env=False)
        # Credentials of this lab only.
        self.superuser_password = secrets.token_urlsafe(18)
        self.replication_password = secrets.token_urlsafe(18)
        self.db_password = secrets.token_urlsafe(18)
        self.tsig_secret = secrets.token_bytes(32)
        # Filled in by start().
        self.networks: dict[str, str] = {}  # castor/jusuf/witness/wan -> Docker network name
        self.subnets: dict[str, ipaddress.IPv4Network] = {}
        self.nodes: dict[str, Node] = {}  # "<site>-<role>" -> node
        self.web_kind: WebKind = "responder"
        self.tsig_secret_file = workdir / "tsig.key"
        self.ca_file = workdir / "lab-ca.pem"
        self.journal = workdir / "journal.jsonl"
        self.started = False

    # --- addresses ---

    def node(self, site: str, role: str) -> Node:
        return self.nodes[f"{site}-{role}"]

    def nodes_at(self, site: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.site == site]

    @property
    def etcd_endpoints(self) -> list[str]:
        """Client URLs of the three etcd members (castor, jusuf, witness)."""
        return [f"http://{self.node(s, 'etcd').site_ip}:2379" for s in LOCATIONS]

    def etcd_endpoint(self, site: str) -> str:
        return f"http://{self.node(site, 'etcd').site_ip}:2379"

    @property
    def patroni_urls(self) -> dict[str, str]:
        """Patroni REST API per site: {"castor": "http://...:8008", "jusuf": ...}."""
        return {s: f"http://{self.node(s, 'db').site_ip}:8008" for s in SITES}

    @property
    def db_members(self) -> dict[str, str]:
        """Patroni member name per site."""
        return {s: f"{s}-db-1" for s in SITES}

    def site_of_member(self, member: str) -> str | None:
        return next((s for s, m in self.db_members.items() if m == member), None)

    @property
    def pg_hosts(self) -> dict[str, str]:
        return {s: self.node(s, "db").site_ip for s in SITES}

    def dsn(
        self,
        *,
        target_session_attrs: str = "read-write",
        connect_timeout: int = 3,
        tcp_user_timeout_ms: int = 3000,
    ) -> str:
        """libpq DSN listing both PostgreSQL members (as the host reaches them).

        connect_timeout bounds each host's attempt; tcp_user_timeout drops a connection whose
        server vanished (an isolated or paused site never answers, not even with a reset).
        """
        hosts = ",".join(self.pg_hosts[s] for s in SITES)
        return (
            f"host={hosts} port=5432,5432 dbname={DB_NAME} user={DB_USER} "
            f"password={self.db_password} target_session_attrs={target_session_attrs} "
            f"connect_timeout={connect_timeout} tcp_user_timeout={tcp_user_timeout_ms}"
        )

    def member_dsn(self, site: str, *, superuser: bool = False) -> str:
        """DSN of one member only (any role), e.g. to count rows on a replica."""
        user, password = (
            ("postgres", self.superuser_password)
            if superuser
            else (
                DB_USER,
                self.db_password,
            )
        )
        return (
            f"host={self.pg_hosts[site]} port=5432 dbname={DB_NAME} user={user} "
            f"password={password} connect_timeout=3 tcp_user_timeout=3000"
        )

    @property
    def wan_database_url(self) -> str:
        """The multi-host URL the sites' web tiers use (the members' wan addresses)."""
        hosts = ",".join(f"{self.node(s, 'db').wan_ip}:5432" for s in SITES)
        return f"postgresql://{DB_USER}:{self.db_password}@{hosts}/{DB_NAME}"

    @property
    def bind_address(self) -> tuple[str, int]:
        """The witness's authoritative DNS server: (ip, 53), UDP and TCP."""
        return self.node(WITNESS, "bind").site_ip, 53

    @property
    def web(self) -> dict[str, WebEndpoint]:
        return {
            s: WebEndpoint(
                probe_url=f"https://{self.node(s, 'web').site_ip}:{WEB_PORT}/readyz",
                address=self.node(s, "web").site_ip,
            )
            for s in SITES
        }

    # --- life cycle ---

    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Bring the whole lab up; returns once castor leads and jusuf is its sync standby."""
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._check_images()
        with self.timings.phase("networks"):
            self._create_networks()
        self._plan_nodes()
        self._write_secrets()
        with self.timings.phase("etcd"):
            for site in LOCATIONS:
                self._run_etcd(site)
            self._run_bind()
            self.wait_etcd_healthy(LOCATIONS, timeout=60)
        with self.timings.phase("patroni castor"):
            self._run_db("castor")
            self.wait_for_leader("castor", timeout=120)
        with self.timings.phase("patroni jusuf"):
            self._run_db("jusuf")
            if self.web_kind == "job-queue":
                self._migrate()
            self.wait_for_sync_standby("jusuf", timeout=120)
        with self.timings.phase("bind9"):
            self.wait_dns_ready(timeout=30)
        with self.timings.phase("web"):
            for site in SITES:
                self._run_web(site)
            for site in SITES:
                self.wait_web_ready(site, timeout=60)
        self.started = True
        self.timings.phases["total"] = time.monotonic() - started

    def close(self) -> None:
        """Remove every container (with its volumes) and network of this lab."""
        self._http.close()
        with contextlib.suppress(docker.errors.APIError):
            _remove_lab_resources(self.client, self.id)

    def logs(self, site: str, role: str, tail: int = 60) -> str:
        container = self.client.containers.get(self.node(site, role).container)
        return str(container.logs(tail=tail).decode(errors="replace"))

    # --- building blocks of start() ---

    def _check_images(self) -> None:
        missing = []
        for directory in ("etcd", "patroni", "bind9"):
            try:
                self.client.images.get(image_ref(directory))
            except docker.errors.ImageNotFound:
                missing.append(directory)
        if missing:
            raise LabError(
                f"images not built: {', '.join(image_ref(d) for d in missing)}; "
                f"run images/build.sh {' '.join(missing)}"
            )
        if self._web_choice == "auto":
            try:
                self.client.images.get(image_ref("job-queue"))
            except docker.errors.ImageNotFound:
                self.web_kind = "responder"
            else:
                self.web_kind = "job-queue"
        else:
            self.web_kind = self._web_choice

    def _used_subnets(self) -> list[ipaddress.IPv4Network]:
        used: list[ipaddress.IPv4Network] = []
        for network in self.client.networks.list():
            for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
                with contextlib.suppress(KeyError, ValueError):
                    subnet = ipaddress.ip_network(config["Subnet"])
                    if isinstance(subnet, ipaddress.IPv4Network):
                        used.append(subnet)
        with contextlib.suppress(OSError), open("/proc/net/route") as routes:
            for line in list(routes)[1:]:
                fields = line.split()
                destination = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
                mask = bin(int.from_bytes(bytes.fromhex(fields[7])[::-1], "big")).count("1")
                used.append(ipaddress.IPv4Network(f"{destination}/{mask}", strict=False))
        return [u for u in used if u.prefixlen > 0]

    def _create_networks(self) -> None:
        """Four /24s from 10.213.0.0/16 that nothing else on this host uses."""
        names = (*LOCATIONS, "wan")
        for block in range(64):
            candidates = {
                name: ipaddress.IPv4Network(f"10.213.{block * 4 + i}.0/24")
                for i, name in enumerate(names)
            }
            used = self._used_subnets()
            if any(c.overlaps(u) for c in candidates.values() for u in used):
                continue
            created: list[Any] = []
            try:
                for name, subnet in candidates.items():
                    pool = docker.types.IPAMPool(
                        subnet=str(subnet),
                        gateway=str(subnet[1]),
                        # Docker's own picks (one-shot containers) stay out of the fixed ones.
                        iprange=str(ipaddress.IPv4Network(f"{subnet[128]}/25")),
                    )
                    created.append(
                        self.client.networks.create(
                            f"{self.prefix}{name}",
                            driver="bridge",
                            internal=True,
                            ipam=docker.types.IPAMConfig(pool_configs=[pool]),
                            labels=self._labels,
                        )
                    )
            except docker.errors.APIError as error:
                for network in created:
                    network.remove()
                if "overlap" in str(error).lower():
                    continue  # another lab took it meanwhile
                raise
            self.networks = {name: f"{self.prefix}{name}" for name in names}
            self.subnets = candidates
            return
        raise LabError("no free /24 subnets left in 10.213.0.0/16 for the lab networks")

    def _plan_nodes(self) -> None:
        def add(role: str, site: str, hosts: tuple[int, int]) -> None:
            self.nodes[f"{site}-{role}"] = Node(
                role=role,
                site=site,
                container=f"{self.prefix}{site}-{role}",
                site_ip=str(self.subnets[site][hosts[0]]),
                wan_ip=str(self.subnets["wan"][hosts[1]]),
            )

        for site in LOCATIONS:
            add("etcd", site, _ETCD_HOST[site])
        for site in SITES:
            add("db", site, _DB_HOST[site])
            add("web", site, _WEB_HOST[site])
        add("bind", WITNESS, _BIND_HOST)

    def _write_secrets(self) -> None:
        self.workdir.chmod(0o755)  # the web containers' users read the TLS files below it
        self.tsig_secret_file.write_text(base64.b64encode(self.tsig_secret).decode() + "\n")
        self.tsig_secret_file.chmod(0o600)
        ips = [self.node(s, "web").site_ip for s in SITES]
        ips += [self.node(s, "web").wan_ip for s in SITES]
        self.ca_file, self._cert_file, self._key_file = make_test_ca(self.workdir, ips)

    def _run(
        self,
        node: Node,
        image: str,
        *,
        environment: Mapping[str, str],
        command: list[str] | None = None,
        entrypoint: list[str] | None = None,
        volumes: Mapping[str, Mapping[str, str]] | None = None,
        healthcheck: Mapping[str, Any] | None = None,
    ) -> None:
        """Create the node's container on its site network, join the wan, start it."""
        api = self.client.api
        networking = api.create_networking_config(
            {self.networks[node.site]: api.create_endpoint_config(ipv4_address=node.site_ip)}
        )
        host_config = api.create_host_config(
            binds=dict(volumes or {}),
            init=False,
            mem_limit="512m",
        )
        created = api.create_container(
            image,
            name=node.container,
            hostname=f"{node.site}-{node.role}",
            command=command,
            entrypoint=entrypoint,
            environment=dict(environment),
            labels=self._labels,
            host_config=host_config,
            networking_config=networking,
            healthcheck=healthcheck,
            detach=True,
        )
        api.connect_container_to_network(
            created["Id"], self.networks["wan"], ipv4_address=node.wan_ip
        )
        api.start(created["Id"])

    def _run_etcd(self, site: str) -> None:
        node = self.node(site, "etcd")
        peers = ",".join(f"{s}=http://{self.node(s, 'etcd').wan_ip}:2380" for s in LOCATIONS)
        self._run(
            node,
            image_ref("etcd"),
            environment={
                "ETCD_NAME": site,
                "ETCD_INITIAL_CLUSTER": peers,
                "ETCD_INITIAL_CLUSTER_TOKEN": f"nmpi-it-{self.id}",
                # Clients on the host use the site address; Patroni finds the wan ones.
                "ETCD_ADVERTISE_CLIENT_URLS": f"http://{node.wan_ip}:2379",
            },
        )

    def _run_db(self, site: str) -> None:
        node = self.node(site, "db")
        ttl, loop_wait, retry_timeout = self._patroni
        etcd_hosts = ",".join(f"{self.node(s, 'etcd').wan_ip}:2379" for s in LOCATIONS)
        self._run(
            node,
            image_ref("patroni"),
            environment={
                "PATRONI_NAME": self.db_members[site],
                "PATRONI_SCOPE": "nmpi",
                "NMPI_SITE": site,
                "NMPI_CONNECT_ADDRESS": node.wan_ip,
                "NMPI_ETCD_HOSTS": etcd_hosts,
                "NMPI_SUPERUSER_PASSWORD": self.superuser_password,
                "NMPI_REPLICATION_PASSWORD": self.replication_password,
                "NMPI_DB_PASSWORD": self.db_password,
                "NMPI_DB_NAME": DB_NAME,
                "NMPI_DB_USER": DB_USER,
                "NMPI_PATRONI_TTL": str(ttl),
                "NMPI_PATRONI_LOOP_WAIT": str(loop_wait),
                "NMPI_PATRONI_RETRY_TIMEOUT": str(retry_timeout),
            },
        )

    def _run_bind(self) -> None:
        node = self.node(WITNESS, "bind")
        records = ""
        if self._initial_dns_site is not None:
            address = self.node(self._initial_dns_site, "web").site_ip
            records = f"{RECORD} 30 IN A {address}"
        self._run(
            node,
            image_ref("bind9"),
            environment={
                "NMPI_ZONE": ZONE,
                "NMPI_TSIG_KEY_NAME": TSIG_KEY_NAME,
                "NMPI_TSIG_ALGORITHM": TSIG_ALGORITHM,
                "NMPI_TSIG_SECRET_FILE": "/run/secrets/tsig.key",
                "NMPI_NS_ADDRESS": node.site_ip,
                "NMPI_ZONE_RECORDS": records,
            },
            volumes={str(self.tsig_secret_file): {"bind": "/run/secrets/tsig.key", "mode": "ro"}},
        )

    def _tls_volumes(self) -> dict[str, dict[str, str]]:
        return {str(self._cert_file.parent): {"bind": "/run/nmpi-tls", "mode": "ro"}}

    def _migrate(self) -> None:
        """The job-queue schema, once, on the leader (a one-shot container on the wan)."""
        self.client.containers.run(
            image_ref("job-queue"),
            ["nmpi-job-queue", "migrate"],
            name=f"{self.prefix}migrate",
            environment={"NMPI_DATABASE_URL": self.wan_database_url},
            network=self.networks["wan"],
            labels=self._labels,
            remove=True,
            stdout=False,
            stderr=True,  # in the ContainerError raised when it fails
        )

    def _run_web(self, site: str) -> None:
        node = self.node(site, "web")
        if self.web_kind == "job-queue":
            self._run(
                node,
                image_ref("job-queue"),
                command=[
                    "nmpi-job-queue",
                    "serve",
                    "--workers",
                    "1",
                    "--bind",
                    f"0.0.0.0:{WEB_PORT}",
                ],
                environment={
                    "NMPI_DATABASE_URL": self.wan_database_url,
                    "NMPI_DATABASE_CONNECT_TIMEOUT": "3",
                    "NMPI_LOG_FORMAT": "text",
                    # gunicorn reads extra settings from here: serve HTTPS with the lab's cert.
                    "GUNICORN_CMD_ARGS": (
                        "--certfile=/run/nmpi-tls/server.crt --keyfile=/run/nmpi-tls/server.key"
                    ),
                },
                volumes=self._tls_volumes(),
                healthcheck={"test": ["NONE"]},
            )
        else:
            hosts = ",".join(self.node(s, "db").wan_ip for s in SITES)
            dsn = (
                f"host={hosts} port=5432,5432 dbname={DB_NAME} user={DB_USER} "
                f"password={self.db_password} target_session_attrs=read-write connect_timeout=2"
            )
            volumes = self._tls_volumes()
            volumes[str(RESPONDER)] = {"bind": "/opt/nmpi-it/readyz_responder.py", "mode": "ro"}
            self._run(
                node,
                image_ref("patroni"),
                entrypoint=["python3", "/opt/nmpi-it/readyz_responder.py"],
                command=[],
                environment={
                    "NMPI_READYZ_DSN": dsn,
                    "NMPI_READYZ_CERT": "/run/nmpi-tls/server.crt",
                    "NMPI_READYZ_KEY": "/run/nmpi-tls/server.key",
                    "NMPI_READYZ_PORT": str(WEB_PORT),
                },
                volumes=volumes,
                healthcheck={"test": ["NONE"]},
            )

    # --- observations ---

    def cluster(self, site: str | None = None) -> dict[str, Any] | None:
        """Patroni's GET /cluster from `site`'s member, or from the first that answers."""
        for name in [site] if site else list(SITES):
            try:
                response = self._http.get(f"{self.patroni_urls[name]}/cluster", timeout=2.0)
                response.raise_for_status()
                body: dict[str, Any] = response.json()
                return body
            except (httpx.HTTPError, ValueError):
                continue
        return None

    def patroni_config(self, site: str = "castor") -> dict[str, Any]:
        """Patroni's dynamic configuration (GET /config), as kept in etcd."""
        response = self._http.get(f"{self.patroni_urls[site]}/config")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def roles(self, site: str | None = None) -> dict[str, tuple[str, str]]:
        """{member: (role, state)} from /cluster; empty when no member answered."""
        cluster = self.cluster(site) or {}
        return {m["name"]: (m["role"], m["state"]) for m in cluster.get("members", [])}

    def leader_site(self) -> str | None:
        for member, (role, state) in self.roles().items():
            if role == "leader" and state == "running":
                return self.site_of_member(member)
        return None

    def wait_for_leader(self, site: str, timeout: float = 90.0) -> float:
        """Wait until `site`'s member leads (running, writable); returns the seconds waited."""
        member = self.db_members[site]
        started = time.monotonic()

        def leads() -> bool | None:
            role, state = self.roles().get(member, ("", ""))
            if role != "leader" or state != "running":
                return None
            response = self._http.get(f"{self.patroni_urls[site]}/primary", timeout=2.0)
            return True if response.status_code == 200 else None

        wait_until(f"{member} to lead", leads, timeout)
        return time.monotonic() - started

    def wait_for_sync_standby(self, site: str, timeout: float = 90.0) -> float:
        """Wait until `site`'s member is the synchronous standby, streaming."""
        member = self.db_members[site]
        started = time.monotonic()

        def in_sync() -> bool | None:
            role, state = self.roles().get(member, ("", ""))
            return True if role == "sync_standby" and state in ("streaming", "running") else None

        wait_until(f"{member} to be the sync standby", in_sync, timeout)
        return time.monotonic() - started

    def switchover(self, to_site: str, timeout: float = 90.0) -> float:
        """Planned switchover through Patroni's REST API (POST /switchover); waits for it."""
        leader = self.leader_site()
        if leader is None:
            raise LabError("no leader to switch over from")
        if leader == to_site:
            return 0.0
        started = time.monotonic()
        response = self._http.post(
            f"{self.patroni_urls[leader]}/switchover",
            json={"leader": self.db_members[leader], "candidate": self.db_members[to_site]},
            timeout=30.0,
        )
        if response.status_code != 200:
            raise LabError(f"switchover refused: {response.status_code} {response.text}")
        self.wait_for_leader(to_site, timeout)
        return time.monotonic() - started

    def etcd_health(self, site: str, timeout: float = 2.0) -> bool:
        """GET /health of one member: true when it sees a leader (the cluster has quorum)."""
        try:
            response = self._http.get(f"{self.etcd_endpoint(site)}/health", timeout=timeout)
            return bool(response.status_code == 200 and response.json().get("health") == "true")
        except (httpx.HTTPError, ValueError):
            return False

    def etcd_put(self, site: str, key: str, value: str, timeout: float = 3.0) -> bool:
        """A linearizable write through one member (v3 gateway); False when it fails."""
        body = {
            "key": base64.b64encode(key.encode()).decode(),
            "value": base64.b64encode(value.encode()).decode(),
        }
        try:
            response = self._http.post(
                f"{self.etcd_endpoint(site)}/v3/kv/put", json=body, timeout=timeout
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and "error" not in response.json()

    def etcd_members(self, site: str = WITNESS) -> list[str]:
        response = self._http.post(f"{self.etcd_endpoint(site)}/v3/cluster/member/list", json={})
        response.raise_for_status()
        return sorted(m.get("name", "") for m in response.json().get("members", []))

    def wait_etcd_healthy(self, sites: tuple[str, ...] = LOCATIONS, timeout: float = 60) -> None:
        def healthy() -> bool | None:
            return True if all(self.etcd_health(s) for s in sites) else None

        wait_until(f"etcd healthy at {', '.join(sites)}", healthy, timeout)

    def wait_dns_ready(self, timeout: float = 30) -> None:
        def answers() -> bool | None:
            query = dns.message.make_query(ZONE, "SOA")
            reply = dns.query.udp(query, self.bind_address[0], timeout=2)
            return True if reply.rcode() == dns.rcode.NOERROR and reply.answer else None

        wait_until("BIND9 to serve the zone", answers, timeout)

    def web_ready(self, site: str, timeout: float = 5.0) -> int | None:
        """The HTTP status of the site's /readyz over TLS (checked against the lab CA), or None
        when nothing answered in time."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            response = httpx.get(
                self.web[site].probe_url, verify=context, timeout=timeout, trust_env=False
            )
        except httpx.HTTPError:
            return None
        return response.status_code

    def wait_web_ready(self, site: str, timeout: float = 60) -> None:
        wait_until(
            f"the web tier at {site} to be ready",
            lambda: True if self.web_ready(site) == 200 else None,
            timeout,
        )

    # --- failures ---

    def kill_site(self, site: str, mode: KillMode = "isolate") -> None:
        """Take every container of `site` down in the given way (see the module's docstring)."""
        if site in self._killed:
            raise LabError(f"{site} is already down ({self._killed[site]})")
        api = self.client.api
        for node in self.nodes_at(site):
            if mode == "isolate":
                api.disconnect_container_from_network(node.container, self.networks[site])
                api.disconnect_container_from_network(node.container, self.networks["wan"])
            elif mode == "partition":
                api.disconnect_container_from_network(node.container, self.networks["wan"])
            elif mode == "pause":
                api.pause(node.container)
            elif mode == "crash":
                api.kill(node.container)
            else:
                raise ValueError(f"unknown kill mode {mode!r}")
        self._killed[site] = mode

    def restore_site(self, site: str) -> None:
        """Undo `kill_site`: the containers are back with the same addresses."""
        mode = self._killed.pop(site, None)
        if mode is None:
            return
        api = self.client.api
        for node in self.nodes_at(site):
            if mode == "isolate":
                api.connect_container_to_network(
                    node.container, self.networks[site], ipv4_address=node.site_ip
                )
            if mode in ("isolate", "partition"):
                api.connect_container_to_network(
                    node.container, self.networks["wan"], ipv4_address=node.wan_ip
                )
            elif mode == "pause":
                api.unpause(node.container)
            elif mode == "crash":
                api.start(node.container)

    @property
    def killed(self) -> dict[str, KillMode]:
        return dict(self._killed)

    def pause(self, site: str, role: str) -> None:
        """Freeze one container (e.g. an etcd member); `unpause` thaws it."""
        self.client.api.pause(self.node(site, role).container)

    def unpause(self, site: str, role: str) -> None:
        self.client.api.unpause(self.node(site, role).container)

    # --- the daemon's configuration ---

    def failover_config(self, **overrides: Any) -> dict[str, Any]:
        """The nmpi-failover configuration for this lab (format: nmpi_failover.config).

        Keyword arguments replace top-level keys; a dict value is merged one level deep.
        """
        sites = []
        for site in SITES:
            sites.append(
                {
                    "name": site,
                    "probe_url": self.web[site].probe_url,
                    "address": self.web[site].address,
                    "server_name": SERVER_NAME,
                    "ca_file": str(self.ca_file),
                    "patroni_urls": [self.patroni_urls[site]],
                    "db_members": [self.db_members[site]],
                }
            )
        config: dict[str, Any] = {
            "preferred_site": "castor",
            "interval": 2.0,
            "probe_timeout": 1.5,
            "failures_to_down": 3,
            "max_replica_lag_bytes": 1_048_576,
            "switchover_timeout": 60.0,
            "sites": sites,
            "dns": {
                "record": RECORD,
                "ttl": 30,
                "rfc2136": {
                    "server": self.bind_address[0],
                    "port": self.bind_address[1],
                    "zone": ZONE,
                    "tsig": {
                        "key_name": TSIG_KEY_NAME,
                        "algorithm": TSIG_ALGORITHM,
                        "secret_file": str(self.tsig_secret_file),
                    },
                },
            },
            "etcd": {
                "endpoints": self.etcd_endpoints,
                "lease_ttl": 10,
                "key": "/nmpi-failover/leader",
            },
            "journal": str(self.journal),
            "metrics_listen": f"127.0.0.1:{_free_port()}",
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        return config

    def write_failover_config(self, path: Path | None = None, **overrides: Any) -> Path:
        """Write `failover_config(**overrides)` as YAML (default: <workdir>/failover.yaml)."""
        path = path or self.workdir / "failover.yaml"
        path.write_text(yaml.safe_dump(self.failover_config(**overrides), sort_keys=False))
        return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
