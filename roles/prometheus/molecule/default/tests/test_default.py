"""Verify the monitoring server on the converged witness VM, from the controller over the
network as operators and the scraper reach it: the node exporter answers only to a client
certificate of the platform's CA, Prometheus and Alertmanager only over TLS with the password;
Prometheus scrapes the exporter, has loaded every rule of monitoring/prometheus/rules, renders
the consoles, and its always-firing Watchdog reaches Alertmanager, routed to `heartbeat`."""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

testinfra_hosts = ["all"]

REPO = Path(__file__).resolve().parents[5]
PKI = "/etc/nmpi/pki"
PASSWORD_FILE = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "web-password"


@pytest.fixture(scope="module")
def address(host: Any) -> str:
    return str(host.interface("eth0").addresses[0])


@pytest.fixture(scope="module")
def tls_files(host: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The witness's CA, certificate and key: what Prometheus scrapes with."""
    folder = tmp_path_factory.mktemp("pki")
    files = {}
    for name in ("ca.crt", "host.crt", "host.key"):
        path = folder / name
        path.write_text(host.file(f"{PKI}/{name}").content_string)
        files[name] = path
    return files


def _context(tls: dict[str, Path], client_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls["ca.crt"]))
    if client_cert:
        context.load_cert_chain(str(tls["host.crt"]), str(tls["host.key"]))
    return context


def _get(url: str, context: ssl.SSLContext, password: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if password is not None:
        token = base64.b64encode(f"operator:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def _eventually(check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(3)


def test_node_exporter_answers_a_client_certificate_only(
    address: str, tls_files: dict[str, Path]
) -> None:
    url = f"https://{address}:9100/metrics"
    status, body = _get(url, _context(tls_files, client_cert=True))
    assert status == 200
    assert "node_filesystem_avail_bytes" in body
    # What the exporter sees is the host's root filesystem (read-only at /host).
    assert 'mountpoint="/"' in body
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        _get(url, _context(tls_files, client_cert=False))


def test_the_metrics_proxy_serves_loopback_exporters_to_a_client_certificate_only(
    address: str, tls_files: dict[str, Path]
) -> None:
    base = f"https://{address}:9444"
    with_cert = _context(tls_files, client_cert=True)
    status, body = _get(f"{base}/blackbox/metrics", with_cert)
    assert status == 200
    assert "blackbox_exporter_build_info" in body
    # Only the configured targets: nothing else of the host's loopback is relayed.
    assert _get(f"{base}/blackbox/probe?target=127.0.0.1:9090", with_cert)[0] == 404
    assert _get(f"{base}/", with_cert)[0] == 404
    # nginx answers 400 to a TLS client without a certificate of the platform's CA.
    status, body = _get(f"{base}/blackbox/metrics", _context(tls_files, client_cert=False))
    assert status == 400
    assert "No required SSL certificate was sent" in body


def test_the_uis_want_the_password(address: str, tls_files: dict[str, Path]) -> None:
    password = PASSWORD_FILE.read_text().strip()
    context = _context(tls_files, client_cert=False)
    for port, path in ((9090, "/api/v1/status/buildinfo"), (9093, "/api/v2/status")):
        assert _get(f"https://{address}:{port}{path}", context)[0] == 401
        assert (
            _get(f"https://{address}:{port}{path}", context, "wrong-" + secrets.token_hex(8))[0]
            == 401
        )
        assert _get(f"https://{address}:{port}{path}", context, password)[0] == 200


def test_prometheus_scrapes_every_target_and_loaded_every_rule(
    address: str, tls_files: dict[str, Path]
) -> None:
    password = PASSWORD_FILE.read_text().strip()
    context = _context(tls_files, client_cert=False)

    def targets() -> list[dict[str, Any]] | None:
        _, body = _get(f"https://{address}:9090/api/v1/targets", context, password)
        active = json.loads(body)["data"]["activeTargets"]
        return active if active and all(t["health"] == "up" for t in active) else None

    active = _eventually(targets)
    assert active, "not every target is up"
    assert {t["labels"]["job"] for t in active} == {
        "node",
        "prometheus",
        "alertmanager",
        "blackbox_exporter",
        "proxied_blackbox",
    }
    node = next(t for t in active if t["labels"]["job"] == "node")
    assert node["labels"]["host"] == "monitoring-witness"
    assert node["scrapeUrl"].startswith("https://")

    expected = sorted(
        rule.get("alert") or rule.get("record")
        for path in sorted((REPO / "monitoring" / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    )
    _, body = _get(f"https://{address}:9090/api/v1/rules", context, password)
    loaded = sorted(
        rule["name"] for group in json.loads(body)["data"]["groups"] for rule in group["rules"]
    )
    assert expected
    assert loaded == expected


def test_the_consoles_render(address: str, tls_files: dict[str, Path]) -> None:
    password = PASSWORD_FILE.read_text().strip()
    context = _context(tls_files, client_cert=False)
    for page in sorted((REPO / "monitoring" / "consoles").glob("*.html")):
        status, body = _get(f"https://{address}:9090/consoles/{page.name}", context, password)
        assert status == 200, (page.name, body[:500])
        assert "error executing template" not in body.lower(), page.name


def test_the_watchdog_reaches_alertmanager_and_its_heartbeat_route(
    address: str, tls_files: dict[str, Path]
) -> None:
    password = PASSWORD_FILE.read_text().strip()
    context = _context(tls_files, client_cert=False)

    def watchdog() -> dict[str, Any] | None:
        _, body = _get(f"https://{address}:9093/api/v2/alerts", context, password)
        return next((a for a in json.loads(body) if a["labels"]["alertname"] == "Watchdog"), None)

    alert = _eventually(watchdog, timeout=120)
    assert alert, "Prometheus' Watchdog never reached Alertmanager"
    assert alert["labels"]["environment"] == "molecule"
    assert [r["name"] for r in alert["receivers"]] == ["heartbeat"]


def test_the_services_run_unprivileged_and_read_only(host: Any) -> None:
    for name in (
        "nmpi-node-exporter",
        "nmpi-prometheus",
        "nmpi-alertmanager",
        "nmpi-blackbox-exporter",
    ):
        inspect = json.loads(host.check_output(f"docker inspect {name}"))[0]
        assert inspect["State"]["Running"], name
        assert inspect["Config"]["User"] == "100:101", name
        assert inspect["HostConfig"]["ReadonlyRootfs"], name
        assert inspect["HostConfig"]["CapDrop"] == ["ALL"], name
    # The blackbox exporter answers on loopback only.
    listening = host.check_output("ss -Hltn 'sport = :9115'")
    assert "127.0.0.1:9115" in listening
    assert "0.0.0.0:9115" not in listening
    assert yaml.safe_load(host.file("/etc/nmpi/prometheus/web-config.yml").content_string)[
        "basic_auth_users"
    ]["operator"].startswith("$2b$")


def _received(host: Any, marker: str) -> bool:
    found = host.run(f"journalctl -D /var/log/journal/remote --no-pager -q -o cat --grep {marker}")
    return marker in found.stdout


def test_the_journal_reaches_the_log_server_and_survives_its_outage(host: Any) -> None:
    marker = f"nmpi-molecule-{time.time_ns()}"
    host.run_expect([0], f"logger -t nmpi-molecule {marker}-before")
    assert _eventually(lambda: _received(host, f"{marker}-before"), timeout=60)
    # The log server down (a cut): lines logged meanwhile wait in the host's journal and are
    # sent once it is back; the uploader keeps retrying instead of giving up.
    host.run_expect(
        [0], "systemctl stop systemd-journal-remote.socket systemd-journal-remote.service"
    )
    try:
        host.run_expect([0], f"logger -t nmpi-molecule {marker}-during")
        time.sleep(25)  # several of the uploader's failed attempts (every 10 s)
        assert not _received(host, f"{marker}-during")
    finally:
        host.run_expect([0], "systemctl start systemd-journal-remote.socket")
    assert _eventually(lambda: _received(host, f"{marker}-during"), timeout=90)
    restart = host.check_output("systemctl show systemd-journal-upload -p Restart --value")
    assert restart == "always"


def test_notifications_are_written_to_the_journal(host: Any) -> None:
    # Every receiver also posts to the journal receiver: the Watchdog's heartbeat shows there.
    def heartbeat() -> bool:
        out = host.run("journalctl -u nmpi-alert-journal --no-pager -q -o cat").stdout
        return any(
            line.startswith("{")
            and json.loads(line).get("alertname") == "Watchdog"
            and json.loads(line).get("receiver") == "heartbeat"
            for line in out.splitlines()
        )

    assert _eventually(heartbeat, timeout=150)
