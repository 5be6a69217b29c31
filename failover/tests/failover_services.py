"""Real services on loopback for the adapter and daemon tests, and one in-process fake.

* BIND9 (`named` from Debian's bind9) with a zone and a TSIG key allowed to update the
  public name; etcd (`etcd` from Debian's etcd-server), one member or a 3-member cluster;
  an HTTPS /readyz server with a test CA made with `cryptography`.
* FakePatroni: Patroni's REST API (/cluster, /switchover, /failover) with the documented
  status codes (the real Patroni is exercised on the deployed lab: tests/chaos).

Everything listens on 127.0.0.1 at free ports and is stopped by its fixture; the server
processes are started, awaited and stopped by the lab's one harness (nmpi_lab.processes).
"""

from __future__ import annotations

import base64
import datetime
import functools
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.update
import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nmpi_failover.config import Config, load_config
from nmpi_failover.daemon import Daemon, build_adapters
from nmpi_failover.journal import Journal, read_tail
from nmpi_lab.processes import free_port as free_port  # re-exported for the tests
from nmpi_lab.processes import start
from nmpi_lab.processes import stop as stop
from nmpi_lab.processes import wait_until as wait_until

SERVER_NAME = "nmpi.lab.example"
ZONE = "lab.example."
RECORD = "nmpi.lab.example."
KEY_NAME = "nmpi-failover."
CASTOR_IP, JUSUF_IP = "192.0.2.10", "198.51.100.10"  # only ever DNS data, never contacted


def need(binary: str, package: str) -> str:
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if path is None:
        pytest.skip(f"{binary} not installed (Debian package {package})")
    return path


# --- TLS -----------------------------------------------------------------------------------


@dataclass
class LoopbackCa:
    """A CA, a server certificate for SERVER_NAME and 127.0.0.1 and a client certificate
    (clientAuth, as the pki role's host certificates allow), as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert_file: Path
    client_key_file: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )


def make_ca(directory: Path, name: str = "ca", *, key_password: bytes | None = None) -> LoopbackCa:
    """The files of a fresh test CA; `key_password` encrypts the client certificate's key."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"nmpi-failover test {name}")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(SERVER_NAME),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nmpi-failover")]))
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / f"{name}.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = directory / f"{name}-server.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = directory / f"{name}-server.key"
    _write_key(key_file, key)
    client_cert_file = directory / f"{name}-client.pem"
    client_cert_file.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    client_key_file = directory / f"{name}-client.key"
    _write_key(client_key_file, client_key, key_password)
    return LoopbackCa(ca_file, cert_file, key_file, client_cert_file, client_key_file)


class HttpsSite:
    """An HTTPS server answering GET /readyz with a settable status and delay."""

    def __init__(self, ca: LoopbackCa) -> None:
        self.status = 200
        self.delay = 0.0
        self.requests: list[dict[str, str]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append({"path": self.path, "host": self.headers.get("Host", "")})
                if site.delay:
                    time.sleep(site.delay)
                body = b"ok\n" if site.status == 200 else b"not ready\n"
                self.send_response(site.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(ca.cert_file, ca.key_file)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # Handshake in the handler's thread, so a slow client never blocks accept().
        self.server.socket = context.wrap_socket(
            self.server.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}/readyz"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- BIND9 ---------------------------------------------------------------------------------


@dataclass
class Bind:
    port: int
    secret: bytes  # the TSIG key's secret, raw
    secret_file: Path  # base64, mode 0600, as the failover config wants it
    process: subprocess.Popen[bytes]
    directory: Path

    def query(self, rdtype: str = "A") -> set[str]:
        """The record's addresses as BIND serves them right now."""
        response = dns.query.udp(
            dns.message.make_query(RECORD, rdtype), "127.0.0.1", port=self.port, timeout=2
        )
        return {str(r) for rrset in response.answer for r in rrset}

    def point(self, address: str) -> None:
        """Overwrite the record behind the daemons' backs: TSIG-signed with the key they use,
        unconditional (no prerequisite), as a stray operator would."""
        update = dns.update.UpdateMessage(
            ZONE, keyring=dns.tsig.Key(KEY_NAME, self.secret, "hmac-sha256")
        )
        update.replace(RECORD, 30, "A", address)
        response = dns.query.tcp(update, "127.0.0.1", port=self.port, timeout=2)
        if response.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"BIND refused the update: {dns.rcode.to_text(response.rcode())}")


BIND_CONF = """\
options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
key "{key}" {{ algorithm hmac-sha256; secret "{secret}"; }};
zone "{zone}" {{
    type primary;
    file "{dir}/db.zone";
    update-policy {{ grant {key} name {record} A AAAA; }};
}};
"""

ZONE_FILE = """\
$TTL 300
@    IN SOA ns.{zone} hostmaster.{zone} 1 3600 600 86400 60
@    IN NS  ns.{zone}
ns   IN A   127.0.0.1
nmpi 30 IN A {address}
"""


def start_bind(directory: Path, address: str = CASTOR_IP) -> Bind:
    named = need("named", "bind9")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    secret = os.urandom(32)
    secret_b64 = base64.b64encode(secret).decode()
    (directory / "named.conf").write_text(
        BIND_CONF.format(
            dir=directory, port=port, key=KEY_NAME, secret=secret_b64, zone=ZONE, record=RECORD
        )
    )
    (directory / "db.zone").write_text(ZONE_FILE.format(zone=ZONE, address=address))
    secret_file = directory / "tsig.key"
    secret_file.write_text(secret_b64 + "\n")
    secret_file.chmod(0o600)
    log = directory / "named.log"
    log.unlink(missing_ok=True)  # this start's output only
    process = start([named, "-g", "-4", "-c", str(directory / "named.conf")], log)
    bind = Bind(port, secret, secret_file, process, directory)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"named exited: {log.read_text()[-2000:]}")
        try:
            response = dns.query.udp(
                dns.message.make_query(ZONE, "SOA"), "127.0.0.1", port=port, timeout=0.3
            )
        except (dns.exception.Timeout, OSError):
            return False
        return response.rcode() == dns.rcode.NOERROR

    wait_until(answers, 15, "named")
    return bind


# --- etcd ----------------------------------------------------------------------------------


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    cluster: tuple[str, str] | None = None  # (initial cluster, token) of the first start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, initial_cluster: str, token: str) -> None:
        etcd = need("etcd", "etcd-server")
        self.cluster = (initial_cluster, token)
        self.process = start(
            [
                etcd,
                "--name", self.name,
                "--data-dir", str(self.directory / self.name),
                "--listen-client-urls", self.url,
                "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster,
                "--initial-cluster-token", token,
                "--initial-cluster-state", "new",
                # Fast elections, so losing quorum shows within a second.
                "--heartbeat-interval", "50",
                "--election-timeout", "500",
                "--logger", "zap",
                "--log-level", "error",
            ],
            self.directory / f"{self.name}.log",
        )  # fmt: skip

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop(self.process, sig)
            self.process = None

    def restart(self) -> None:
        """Start a stopped member again on its data directory: it rejoins its cluster."""
        assert self.cluster is not None, "never started"
        self.start(*self.cluster)


def etcd_healthy(url: str) -> bool:
    try:
        response = httpx.get(f"{url}/health", timeout=0.5, trust_env=False)
        return bool(response.status_code == 200 and response.json().get("health") == "true")
    except (httpx.HTTPError, ValueError):
        return False


# The lab's etcd members are named after their hosts (the etcd role: inventory_hostname), so
# the db VMs' members carry the Patroni member names the sites' db_members list, and the
# witness's member is neutral.
SITE_ETCD_NAMES = ("castor-db-1", "jusuf-db-1", "witness-1")


def start_etcd(
    directory: Path, size: int = 1, *, names: tuple[str, ...] | None = None
) -> list[EtcdMember]:
    """`size` members named m0, m1, ... or, with `names`, one member per name."""
    directory.mkdir(parents=True, exist_ok=True)
    names = names or tuple(f"m{i}" for i in range(size))
    members = [EtcdMember(name, free_port(), free_port(), directory) for name in names]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    token = uuid.uuid4().hex
    for member in members:
        member.start(initial, token)
    for member in members:
        wait_until(functools.partial(etcd_healthy, member.url), 30, f"etcd {member.name}")
    return members


# --- a fake Patroni ------------------------------------------------------------------------


@dataclass
class FakeMember:
    name: str
    role: str  # leader | sync_standby | replica
    state: str = "streaming"
    lag: int | str = 0
    timeline: int = 7


@dataclass
class FakeCluster:
    """What the Patroni members agree on (their DCS), shared by every FakePatroni."""

    members: dict[str, FakeMember]
    synchronous_mode: bool = True
    promote_delay: float = 0.2  # Patroni takes a moment to promote
    posts: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Called once a switchover was refused for want of a synchronous standby: what the leader's
    # next loop does in Patroni (name it), at a moment a test controls rather than a timer.
    after_sync_refusal: Callable[[], None] | None = None

    @property
    def leader(self) -> str | None:
        leaders = [m.name for m in self.members.values() if m.role == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def promote(self, candidate: str) -> None:
        with self.lock:
            timeline = max(m.timeline for m in self.members.values()) + 1
            for member in self.members.values():
                member.timeline = timeline
                if member.name == candidate:
                    member.role, member.state, member.lag = "leader", "running", 0
                else:
                    member.role, member.state, member.lag = "sync_standby", "streaming", 0

    def as_json(self) -> dict[str, Any]:
        members = []
        for m in sorted(self.members.values(), key=lambda m: m.name):
            member: dict[str, Any] = {
                "name": m.name,
                "role": m.role,
                "state": "running" if m.role == "leader" else m.state,
                "api_url": f"http://127.0.0.1/{m.name}/patroni",
                "timeline": m.timeline,
            }
            if m.role != "leader":
                member["lag"] = m.lag
            members.append(member)
        return {"members": members, "scope": "nmpi"}

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, str]:
        """POST /switchover and /failover as patroni/api.py do_POST_failover answers."""
        self.posts.append({"path": path, **body})
        action = path.strip("/")
        leader, candidate = body.get("leader"), body.get("candidate")
        if action == "failover" and not candidate:
            return 400, "Failover could be performed only to a specific candidate"
        if action == "switchover" and not leader:
            return 400, "Switchover could be performed only from a specific leader"
        if action == "failover" and leader:
            action = "switchover"
        if leader == candidate:
            return 400, "Switchover target and source are the same"
        if leader and leader != self.leader:
            return 412, "leader name does not match"
        if candidate not in self.members:
            return 412, "candidate does not exists"
        member = self.members[candidate]
        if action == "switchover" and self.synchronous_mode and member.role != "sync_standby":
            if self.after_sync_refusal is not None:
                self.after_sync_refusal()
            return 412, "candidate name does not match with sync_standby"
        time.sleep(self.promote_delay)
        self.promote(candidate)
        return 200, f'Successfully {action[:-4]}ed over to "{candidate}"'


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a refused TLS handshake is what the TLS tests provoke; no tracebacks


class FakePatroni:
    """One member's REST API over a shared FakeCluster; `down` makes it refuse to answer.

    With `tls` it serves HTTPS with tls's server certificate and checks client
    certificates against tls's CA like Patroni's `restapi.verify_client`: "optional" asks
    for one, refuses the handshake for one the CA did not sign, and answers the unsafe
    requests (POST) without one with 403 "client certificate required"; "required" refuses
    every handshake without one (patroni/api.py, RestApiServer.check_access)."""

    def __init__(
        self,
        cluster: FakeCluster,
        *,
        tls: LoopbackCa | None = None,
        verify_client: Literal["none", "optional", "required"] = "none",
    ) -> None:
        self.cluster = cluster
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, data: bytes, kind: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path != "/cluster":
                    self._reply(404, b"", "text/plain")
                    return
                data = json.dumps(fake.cluster.as_json()).encode()
                self._reply(200, data, "application/json")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if verify_client != "none" and not self._peer_certificate():
                    self._reply(403, b"client certificate required", "text/plain")
                    return
                code, text = fake.cluster.handle(self.path, {**body, "via": fake.port})
                self._reply(code, text.encode(), "text/plain")

            def _peer_certificate(self) -> Any:
                getpeercert = getattr(self.request, "getpeercert", None)
                return getpeercert() if getpeercert else None

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca_file))
            context.load_cert_chain(tls.cert_file, tls.key_file)
            context.verify_mode = {
                "none": ssl.CERT_NONE,
                "optional": ssl.CERT_OPTIONAL,
                "required": ssl.CERT_REQUIRED,
            }[verify_client]
            # Handshake in the handler's thread, as Patroni does: accept() never blocks.
            self.server.socket = context.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def two_site_cluster(leader: str = "castor") -> FakeCluster:
    other = "jusuf" if leader == "castor" else "castor"
    return FakeCluster(
        {
            f"{leader}-db-1": FakeMember(f"{leader}-db-1", "leader", "running"),
            f"{other}-db-1": FakeMember(f"{other}-db-1", "sync_standby"),
        }
    )


def write_config(
    directory: Path,
    *,
    probe_urls: tuple[str, str],
    patroni_urls: tuple[list[str], list[str]],
    etcd_urls: list[str],
    dns_port: int,
    secret_file: Path | None = None,
    ca_file: Path | None = None,
    **overrides: Any,
) -> Path:
    """A config for services on loopback; returns its path (load it with load_config)."""
    directory.mkdir(parents=True, exist_ok=True)
    if secret_file is None:
        secret_file = directory / "tsig.key"
        secret_file.write_text(base64.b64encode(b"unused-secret-for-unreachable-dns").decode())
        secret_file.chmod(0o600)
    sites = []
    for i, (name, address) in enumerate((("castor", CASTOR_IP), ("jusuf", JUSUF_IP))):
        site: dict[str, Any] = {
            "name": name,
            "probe_url": probe_urls[i],
            "address": address,
            "server_name": SERVER_NAME,
            "patroni_urls": patroni_urls[i],
            "db_members": [f"{name}-db-1"],
        }
        if ca_file is not None:
            site["ca_file"] = str(ca_file)
        sites.append(site)
    data: dict[str, Any] = {
        "preferred_site": "castor",
        "interval": 1.0,
        "probe_timeout": 0.6,
        "failures_to_down": 2,
        "switchover_timeout": 5,
        "sites": sites,
        "dns": {
            "record": RECORD,
            "ttl": 30,
            "rfc2136": {
                "server": "127.0.0.1",
                "port": dns_port,
                "zone": ZONE,
                "tsig": {"key_name": KEY_NAME, "secret_file": str(secret_file)},
            },
        },
        "etcd": {"endpoints": etcd_urls, "lease_ttl": 3, "key": "/nmpi-failover/test"},
        "journal": str(directory / "journal.jsonl"),
        "metrics_listen": f"127.0.0.1:{free_port()}",
    }
    data.update(overrides)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class World:
    config: Config
    ca: LoopbackCa
    castor: HttpsSite
    jusuf: HttpsSite
    cluster: FakeCluster
    bind: Bind

    def daemon(self, *, dry_run: bool, instance: str = "witness-1") -> Daemon:
        journal = Journal(self.config.journal)
        return Daemon(
            self.config,
            build_adapters(self.config, instance=instance),
            journal=journal,
            dry_run=dry_run,
        )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        events = read_tail(self.config.journal, 1000)
        return [e for e in events if name is None or e["event"] == name]


def build_world(
    tmp_path: Path, etcd_url: str | list[str], dns_at: str = CASTOR_IP
) -> Iterator[World]:
    """Two HTTPS sites, a fake Patroni per site, BIND holding the name, a config for them;
    `etcd_url`: one member's, or every member's (e.g. the SITE_ETCD_NAMES cluster's)."""
    etcd_urls = [etcd_url] if isinstance(etcd_url, str) else etcd_url
    ca = make_ca(tmp_path / "tls")
    castor, jusuf = HttpsSite(ca), HttpsSite(ca)
    cluster = two_site_cluster("castor")
    patroni = [FakePatroni(cluster), FakePatroni(cluster)]
    bind = start_bind(tmp_path / "bind", address=dns_at)
    path = write_config(
        tmp_path / "config",
        probe_urls=(castor.url, jusuf.url),
        patroni_urls=([patroni[0].url], [patroni[1].url]),
        etcd_urls=etcd_urls,
        dns_port=bind.port,
        secret_file=bind.secret_file,
        ca_file=ca.ca_file,
        etcd={"endpoints": etcd_urls, "lease_ttl": 3, "key": f"/test/{uuid.uuid4().hex}"},
    )
    try:
        yield World(load_config(path), ca, castor, jusuf, cluster, bind)
    finally:
        stop(bind.process)
        for site in (castor, jusuf):
            site.close()
        for member in patroni:
            member.close()


@pytest.fixture
def loopback_ca(tmp_path: Path) -> LoopbackCa:
    return make_ca(tmp_path / "tls")


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind]:
    server = start_bind(tmp_path / "bind")
    try:
        yield server
    finally:
        stop(server.process)


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdMember]:
    (member,) = start_etcd(tmp_path_factory.mktemp("etcd"))
    try:
        yield member
    finally:
        member.stop()


@pytest.fixture(scope="module")
def etcd_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EtcdMember]]:
    """Three members as deployed: castor-db-1, jusuf-db-1 (the sites') and witness-1."""
    members = start_etcd(tmp_path_factory.mktemp("etcd-sites"), names=SITE_ETCD_NAMES)
    try:
        yield members
    finally:
        for member in members:
            member.stop(signal.SIGKILL)  # a graceful stop of a leader can take seconds
