"""Verify pki: each VM holds a CA, a certificate for its names signed by that CA, and its key.

pki-lab was converged in lab mode (the scenario's CA on the controller), pki-provided in provided
mode (the operator CA made in prepare).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

testinfra_hosts = ["all"]

PKI = "/etc/nmpi/pki"
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))


def name_of(host: Any) -> str:
    return str(host.backend.get_hostname())


def certificate(host: Any, path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(host.file(path).content)


def address(host: Any) -> str:
    """The VM's address on its network (eth0; docker0 of its own engine is not it)."""
    return next(str(a) for a in host.interface("eth0").addresses if ":" not in str(a))


def test_file_modes_and_owners(host: Any) -> None:
    group = "nmpi-tls" if name_of(host) == "pki-lab" else "root"
    for path, mode, owner_group in (
        (f"{PKI}/ca.crt", 0o644, "root"),
        (f"{PKI}/host.crt", 0o644, "root"),
        (f"{PKI}/host.key", 0o640, group),
    ):
        f = host.file(path)
        assert f.is_file, path
        assert f.mode == mode, path
        assert f.user == "root", path
        assert f.group == owner_group, path


def test_certificate_signed_by_the_installed_ca(host: Any) -> None:
    ca = certificate(host, f"{PKI}/ca.crt")
    cert = certificate(host, f"{PKI}/host.crt")
    cert.verify_directly_issued_by(ca)  # raises when the signature or issuer does not match
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca


def test_the_lab_ca_is_the_controllers() -> None:
    ca_dir = EPHEMERAL / "lab-ca"
    assert (ca_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (ca_dir / "ca.crt").is_file()


def test_lab_host_trusts_the_controllers_lab_ca(host: Any) -> None:
    if name_of(host) != "pki-lab":
        pytest.skip("lab mode only")
    assert host.file(f"{PKI}/ca.crt").content == (EPHEMERAL / "lab-ca" / "ca.crt").read_bytes()


def test_key_matches_certificate(host: Any) -> None:
    key = serialization.load_pem_private_key(host.file(f"{PKI}/host.key").content, None)
    cert = certificate(host, f"{PKI}/host.crt")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(
        serialization.Encoding.PEM, public
    ) == cert.public_key().public_bytes(serialization.Encoding.PEM, public)


def test_names_and_usages(host: Any) -> None:
    cert = certificate(host, f"{PKI}/host.crt")
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(sans.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert {name_of(host), "localhost"} <= dns
    assert {address(host), "127.0.0.1"} <= ips
    if name_of(host) == "pki-lab":
        assert "nmpi.test.example" in dns
        assert {"192.0.2.10", "198.51.100.7"} <= ips
        assert all(isinstance(ipaddress.ip_address(ip), ipaddress.IPv4Address) for ip in ips)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages


MUTUAL_TLS = """
import socket, ssl, threading
pki = "/etc/nmpi/pki"
server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=f"{pki}/ca.crt")
server.load_cert_chain(f"{pki}/host.crt", f"{pki}/host.key")
server.verify_mode = ssl.CERT_REQUIRED
client = ssl.create_default_context(cafile=f"{pki}/ca.crt")
client.load_cert_chain(f"{pki}/host.crt", f"{pki}/host.key")
a, b = socket.socketpair()
seen = {}
def serve():
    with server.wrap_socket(a, server_side=True) as s:
        seen["peer"] = s.getpeercert()["subject"]
        s.sendall(b"ok")
t = threading.Thread(target=serve)
t.start()
with client.wrap_socket(b, server_hostname="localhost") as c:
    print(c.recv(2).decode(), c.version())
t.join()
print(seen["peer"])
"""


def test_mutual_tls_handshake_with_the_files(host: Any) -> None:
    """Server and client each present the host certificate and check the other's against the CA."""
    out = host.check_output(f"python3 -c '{MUTUAL_TLS}'")
    assert out.startswith("ok TLSv1.3"), out
    assert name_of(host) in out
