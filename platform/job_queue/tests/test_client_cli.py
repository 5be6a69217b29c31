"""The nmpi command-line tool (hbp-neuromorphic-platform 0.11.2, unmodified) against the service.

`nmpi run` and `nmpi check` build their client from the command line and nmpi_config.yml
only: the token is always checked at EBRAINS IAM's userinfo (iam.ebrains.eu), the server URL
(-e) must start with https, and `run` always uploads the script's folder to EBRAINS Drive. So
`nmpi check` works with a deployment in oidc mode with EBRAINS IAM as its provider, served
over https, and no CLI command works in local mode (IAM does not know local tokens); see
docs/client-compatibility.md.

This plays that deployment on loopback only: a test CA (trusted through REQUESTS_CA_BUNDLE), the
service over https in oidc mode, a stand-in for EBRAINS IAM, and a forward proxy (HTTPS_PROXY)
that tunnels iam.ebrains.eu to the stand-in, refuses every other host and records what it was
asked. The CLI runs as a process of its own, from its console script.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import http.server
import ipaddress
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import stop_server, uvicorn_command
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nmpi_lab import processes
from pg_harness import free_port

IAM_HOST = "iam.ebrains.eu"
USERINFO_PATH = "/auth/realms/hbp/protocol/openid-connect/userinfo"  # the client's default
TOKEN = "token-erin-" + secrets.token_hex(8)  # made per run
COLLAB = "cli-lab"
PLATFORM = "Demo"
USERINFO = {
    "sub": "5e1d-erin",
    "preferred_username": "erin",
    "given_name": "Erin",
    "family_name": "Example",
    "roles": {"team": [f"collab-{COLLAB}-editor"], "group": []},
}


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path  # for iam.ebrains.eu and 127.0.0.1
    key_file: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_pki(directory: Path) -> Pki:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nmpi-job-queue test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(IAM_HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, IAM_HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


class _Userinfo(http.server.BaseHTTPRequestHandler):
    """EBRAINS IAM's userinfo, for one user."""

    def do_GET(self) -> None:
        known = self.path == USERINFO_PATH and self.headers["Authorization"] == f"Bearer {TOKEN}"
        body = json.dumps(USERINFO if known else {"error": "invalid_token"}).encode()
        self.send_response(200 if known else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class _Proxy(http.server.ThreadingHTTPServer):
    def __init__(self, iam_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.iam_port = iam_port
        self.asked: list[str] = []  # host:port of every CONNECT


class _Tunnel(http.server.BaseHTTPRequestHandler):
    """CONNECT iam.ebrains.eu:443 reaches the stand-in; every other host is refused."""

    server: _Proxy

    def do_CONNECT(self) -> None:
        self.server.asked.append(self.path)
        self.close_connection = True
        if self.path != f"{IAM_HOST}:443":
            self.send_error(403, "only iam.ebrains.eu is reachable in this test")
            return
        with socket.create_connection(("127.0.0.1", self.server.iam_port)) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            upload = threading.Thread(target=_pipe, args=(self.connection, upstream))
            upload.start()
            _pipe(upstream, self.connection)
            upload.join()

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Deployment:
    url: str  # the service, https
    pki: Pki
    proxy: _Proxy
    outputs: tuple[Path, str]  # a hardware site's file server (plain http)


def _serve(server: http.server.HTTPServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


@pytest.fixture
def deployment(database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    pki = make_pki(tmp_path / "pki")
    iam = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Userinfo)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki.cert_file, pki.key_file)
    iam.socket = tls.wrap_socket(iam.socket, server_side=True)
    iam_plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Userinfo)  # for the service
    proxy = _Proxy(iam.server_address[1])
    root = tmp_path / "site"
    root.mkdir()
    site = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0),
        functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root)),
    )
    servers = [iam, iam_plain, proxy, site]
    for server in servers:
        _serve(server)
    port = free_port()
    log = tmp_path / "server.log"
    process = processes.start(
        uvicorn_command(
            port, "--ssl-certfile", str(pki.cert_file), "--ssl-keyfile", str(pki.key_file)
        ),
        log,
        env={
            **os.environ,
            "NMPI_DATABASE_URL": database_url,
            "NMPI_IDENTITY_MODE": "oidc",
            "NMPI_OIDC_USERINFO_URL": f"http://127.0.0.1:{iam_plain.server_address[1]}"
            + USERINFO_PATH,
            "NMPI_LOG_FORMAT": "json",
        },
    )
    url = f"https://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: processes.http_ok(f"{url}/healthz", verify=pki.context()),
            60,  # a loaded 2-core machine took 30 s
            "the job-queue server",
            interval=0.1,
            process=process,
            log=log,
        )
        yield Deployment(url, pki, proxy, (root, f"http://127.0.0.1:{site.server_address[1]}"))
    finally:
        stop_server(process)
        for server in servers:
            server.shutdown()


def nmpi_cli(deployment: Deployment, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`nmpi <args> -e https://<service>/` in `workdir`, as a user of the deployment would run it
    (with the proxy and the CA standing in for the internet and the public CAs)."""
    script = Path(sys.executable).with_name("nmpi")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "nmpi.cli"]
    proxy = f"http://127.0.0.1:{deployment.proxy.server_address[1]}"
    names = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "curl_ca_bundle")
    environment = {k: v for k, v in os.environ.items() if k.lower() not in names}
    environment.update(
        HOME=str(workdir),  # the client writes ~/.hbptoken
        HTTPS_PROXY=proxy,
        NO_PROXY="127.0.0.1",
        REQUESTS_CA_BUNDLE=str(deployment.pki.ca_file),
    )
    return subprocess.run(
        [*command, *args, "-e", f"{deployment.url}/"],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def workdir_with_config(tmp_path: Path) -> Path:
    """A folder with the nmpi_config.yml that docs/client-compatibility.md shows."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = {
        "username": "erin",
        "token": TOKEN,
        "collab_id": COLLAB,
        "default_platform": PLATFORM,
    }
    (workdir / "nmpi_config.yml").write_text(yaml.safe_dump(config))
    return workdir


def test_nmpi_check_downloads_results(
    deployment: Deployment, new_provider: Callable[[list[str]], str], tmp_path: Path
) -> None:
    """Jobs submitted with `nmpi run --batch` are followed up by `nmpi check`."""
    context = deployment.pki.context()
    user = httpx.Client(
        base_url=deployment.url, headers={"Authorization": f"Bearer {TOKEN}"}, verify=context
    )
    provider = httpx.Client(
        base_url=deployment.url, headers={"x-api-key": new_provider([PLATFORM])}, verify=context
    )
    root, site = deployment.outputs
    (root / "job_a").mkdir()
    (root / "job_a" / "spikes.dat").write_text("spikes\n")

    def job(result: dict[str, Any] | None) -> int:
        reply = user.post(
            "/jobs/", json={"code": "print(1)", "collab": COLLAB, "hardware_platform": PLATFORM}
        )
        assert reply.status_code == 201, reply.text
        job_id: int = reply.json()["id"]
        if result is not None:
            claimed = provider.get(f"/jobs/next/{PLATFORM}")
            while claimed.status_code == 200 and claimed.json()["id"] != job_id:
                claimed = provider.get(f"/jobs/next/{PLATFORM}")  # jobs of earlier tests
            assert claimed.status_code == 200, claimed.text
            assert provider.put(f"/jobs/{job_id}/log", content=f"log {job_id}\n").is_success
            reply = provider.put(f"/jobs/{job_id}", json=result)
            assert reply.status_code == 200, reply.text
        return job_id

    outputs = {"repository": "Demo site", "files": [{"url": f"{site}/job_a/spikes.dat"}]}
    with_outputs = job({"status": "finished", "output_data": outputs})  # by URL only
    without_outputs = job({"status": "finished"})
    failed = job({"status": "error"})
    queued = job(None)
    workdir = workdir_with_config(tmp_path)
    (workdir / "results").mkdir()
    pending = [with_outputs, without_outputs, failed, queued]
    (workdir / ".incomplete_jobs.yml").write_text(
        yaml.safe_dump([{"job_id": f"/jobs/{i}", "output_dir": "results"} for i in pending])
    )

    done = nmpi_cli(deployment, workdir, "check")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"Job #{with_outputs} complete",
        f"Job #{without_outputs} complete",
        f"Job #{failed} errored",
    ]
    results = workdir / "results"
    assert (results / "job_a" / "spikes.dat").read_text() == "spikes\n"
    for job_id in (with_outputs, without_outputs, failed):
        assert (results / f"job_{job_id}.log").read_text() == f"log {job_id}\n"
    assert (results / f"job_{queued}.log").read_text() == ""
    remaining = yaml.safe_load((workdir / ".incomplete_jobs.yml").read_text())
    assert remaining == [{"job_id": f"/jobs/{queued}", "output_dir": "results"}]
    # Nothing but EBRAINS IAM was asked for beyond loopback.
    assert set(deployment.proxy.asked) == {f"{IAM_HOST}:443"}


def test_nmpi_run_needs_ebrains_drive(deployment: Deployment, tmp_path: Path) -> None:
    """`nmpi run` uploads the script's folder to EBRAINS Drive before submitting: without
    Drive, no job is submitted."""
    workdir = workdir_with_config(tmp_path)
    (workdir / "run.py").write_text("print('hello')\n")
    user = httpx.Client(
        base_url=deployment.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        verify=deployment.pki.context(),
    )
    before = user.get("/jobs/", params={"collab": COLLAB, "size": 1000}).json()

    done = nmpi_cli(deployment, workdir, "run", "run.py", "--batch")

    assert done.returncode != 0
    assert "drive.ebrains.eu" in done.stderr
    assert deployment.proxy.asked == [f"{IAM_HOST}:443", "drive.ebrains.eu:443"]
    assert user.get("/jobs/", params={"collab": COLLAB, "size": 1000}).json() == before
