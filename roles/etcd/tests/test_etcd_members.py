"""Verify etcd: three members with one leader, TLS with client certificates, data on the host.

testinfra tests of the etcd role, run by the database cluster's molecule scenario
(roles/patroni/molecule/default, verifier.additional_files_or_dirs), which converges etcd on
three VMs before Patroni: the same members a scenario of etcd's own would build (decision
record 0007).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

testinfra_hosts = ["etcd"]

CONTAINER = "nmpi-etcd"


def members_in_inventory(host: Any) -> set[str]:
    """The scenario's etcd group: the members the cluster must have, no more, no fewer."""
    return set(host.ansible.get_variables()["groups"]["etcd"])


def etcdctl(host: Any, *args: str) -> str:
    """etcdctl in the member's container: TLS to 127.0.0.1 with the host's certificate."""
    return str(
        host.check_output(f"docker exec {CONTAINER} etcdctl --command-timeout=5s {' '.join(args)}")
    )


def name_of(host: Any) -> str:
    return str(host.backend.get_hostname())


def test_three_members_all_started(host: Any) -> None:
    members = json.loads(etcdctl(host, "member", "list", "-w", "json"))["members"]
    assert {m["name"] for m in members} == members_in_inventory(host)
    for member in members:
        assert all(url.startswith("https://") for url in member["peerURLs"] + member["clientURLs"])


def test_one_leader_seen_by_every_member(host: Any) -> None:
    status = json.loads(etcdctl(host, "endpoint", "status", "--cluster", "-w", "json"))
    assert len(status) == len(members_in_inventory(host))
    leaders = {s["Status"]["leader"] for s in status}
    assert len(leaders) == 1
    assert leaders != {0}


def test_put_here_get_from_every_member(host: Any) -> None:
    key = f"/molecule/{name_of(host)}"
    etcdctl(host, "put", key, "written-through-tls")
    members = json.loads(etcdctl(host, "member", "list", "-w", "json"))["members"]
    for member in members:
        url = member["clientURLs"][0]
        got = etcdctl(host, f"--endpoints={url}", "get", "--print-value-only", key)
        assert got.strip() == "written-through-tls", url


TLS_PROBE = """
import ssl, sys, urllib.error, urllib.request
pki = "/etc/nmpi/pki"
path = sys.argv[2] if len(sys.argv) > 2 else "/version"
context = ssl.create_default_context(cafile=f"{pki}/ca.crt")
if sys.argv[1] == "with-cert":
    context.load_cert_chain(f"{pki}/host.crt", f"{pki}/host.key")
data = b"{}" if path.startswith("/v3/") else None  # the v3 gateway takes POSTed JSON
request = urllib.request.Request(f"https://127.0.0.1:2379{path}", data=data)
try:
    with urllib.request.urlopen(request, context=context, timeout=5) as reply:
        print("answered", reply.status)
except urllib.error.HTTPError as error:
    print("answered", error.code)
except OSError as error:  # TLS refused (URLError wraps the SSL error)
    print("refused", error)
"""


@pytest.mark.parametrize(
    ("mode", "expected"), [("with-cert", "answered 200"), ("without-cert", "refused")]
)
def test_client_certificate_required(host: Any, mode: str, expected: str) -> None:
    host.check_output(f"cat > /tmp/tls_probe.py <<'EOF'\n{TLS_PROBE}\nEOF")
    out = host.check_output(f"python3 /tmp/tls_probe.py {mode}")
    assert out.startswith(expected), out


def test_v3_http_gateway_answers(host: Any) -> None:
    """Patroni's etcd3 DCS and nmpi-failover speak the v3 API over HTTP/JSON (/v3/...)."""
    host.check_output(f"cat > /tmp/tls_probe.py <<'EOF'\n{TLS_PROBE}\nEOF")
    out = host.check_output("python3 /tmp/tls_probe.py with-cert /v3/maintenance/status")
    assert out.startswith("answered 200"), out


def test_plain_http_is_not_served(host: Any) -> None:
    probe = 'import urllib.request as r; r.urlopen("http://127.0.0.1:2379/version", timeout=5)'
    result = host.run(f"python3 -c '{probe}'")
    assert result.rc != 0


def test_container_settings(host: Any) -> None:
    info = json.loads(host.check_output(f"docker inspect {CONTAINER}"))[0]
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert info["State"]["Running"]
    assert info["Config"]["Image"].startswith("nmpi/etcd:")
    assert "org.nmpi.etcd.config-checksum" in info["Config"]["Labels"]


def test_cross_site_settings(host: Any) -> None:
    config = host.file("/etc/nmpi/etcd/etcd.yml").content_string
    for line in (
        "heartbeat-interval: 250",
        "election-timeout: 2500",
        "pre-vote: true",
        "initial-cluster-state: existing",
        "client-cert-auth: true",
    ):
        assert line in config


def test_data_on_the_host(host: Any) -> None:
    data = host.file("/srv/nmpi/etcd")
    assert data.mode == 0o700
    assert data.uid == 100
    assert host.file("/srv/nmpi/etcd/member/wal").is_directory


def test_health_check_reports_healthy(host: Any) -> None:
    state = host.check_output(f"docker inspect --format '{{{{.State.Health.Status}}}}' {CONTAINER}")
    assert state in ("healthy", "starting")
