"""Verify failover_daemon on the converged VM: the daemon runs confined, as its own user,
observes endpoints that do not exist without crashing, and reports it (metrics, journal)."""

from __future__ import annotations

import json
import time
from typing import Any

testinfra_hosts = ["all"]

BIN = "/opt/nmpi-failover/venv/bin/nmpi-failover"
CONFIG = "/etc/nmpi-failover/config.yaml"
JOURNAL = "/srv/nmpi-failover/journal.jsonl"
METRICS = "http://127.0.0.1:9469/metrics"


def show(host: Any, *properties: str) -> dict[str, str]:
    out = host.check_output(f"systemctl show nmpi-failover -p {','.join(properties)}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def eventually(probe: Any, seconds: float = 30) -> Any:
    """probe() until it returns something true, or its last value after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


def test_service_enabled_and_running(host: Any) -> None:
    service = host.service("nmpi-failover")
    assert service.is_enabled
    assert service.is_running


def test_runs_as_its_own_user_without_privileges(host: Any) -> None:
    pid = show(host, "MainPID")["MainPID"]
    assert pid != "0"
    assert host.check_output(f"ps -o user= -p {pid}").strip() == "nmpi-failover"
    status = host.file(f"/proc/{pid}/status").content_string
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert int(fields["CapEff"], 16) == 0
    assert int(fields["CapBnd"], 16) == 0


def test_hardening_applied(host: Any) -> None:
    props = show(
        host,
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateUsers",
        "ProtectKernelTunables",
        "RestrictSUIDSGID",
        "CapabilityBoundingSet",
        "ReadWritePaths",
        "User",
        "Restart",
    )
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["PrivateDevices"] == "yes"
    assert props["PrivateUsers"] == "yes"
    assert props["ProtectKernelTunables"] == "yes"
    assert props["RestrictSUIDSGID"] == "yes"
    assert props["CapabilityBoundingSet"] == ""
    assert props["ReadWritePaths"] == "/srv/nmpi-failover"
    assert props["User"] == "nmpi-failover"
    assert props["Restart"] == "on-failure"


def test_not_restarting_in_a_loop(host: Any) -> None:
    assert show(host, "NRestarts")["NRestarts"] == "0"


def test_config_and_secret_files(host: Any) -> None:
    folder = host.file("/etc/nmpi-failover")
    assert (folder.user, folder.group, folder.mode) == ("root", "nmpi-failover", 0o750)
    for path in (CONFIG, "/etc/nmpi-failover/tsig.key", "/etc/nmpi-failover/clouds.yaml"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "nmpi-failover", 0o640), path
    ca = host.file("/etc/nmpi-failover/ca-castor.pem")
    assert ca.content_string.startswith("-----BEGIN CERTIFICATE-----")
    # The secret lives only in its own file, never in the config.
    secret = host.file("/etc/nmpi-failover/tsig.key").content_string.strip()
    assert len(secret) >= 16
    assert secret not in host.file(CONFIG).content_string
    assert "secret_file: /etc/nmpi-failover/tsig.key" in host.file(CONFIG).content_string


def test_patroni_tls_files(host: Any) -> None:
    files = {
        name: host.file(f"/etc/nmpi-failover/{name}")
        for name in ("patroni-ca.pem", "patroni-client.pem", "patroni-client.key")
    }
    for name, f in files.items():
        assert (f.user, f.group, f.mode) == ("root", "nmpi-failover", 0o640), name
    assert files["patroni-ca.pem"].content_string.startswith("-----BEGIN CERTIFICATE-----")
    assert files["patroni-client.pem"].content_string.startswith("-----BEGIN CERTIFICATE-----")
    key = files["patroni-client.key"].content_string
    assert "PRIVATE KEY-----" in key
    config = host.file(CONFIG).content_string
    assert key.strip() not in config
    assert (
        "patroni:\n"
        "  ca_file: /etc/nmpi-failover/patroni-ca.pem\n"
        "  cert_file: /etc/nmpi-failover/patroni-client.pem\n"
        "  key_file: /etc/nmpi-failover/patroni-client.key\n"
    ) in config
    # check-config loads them (the key matches the certificate), as the service user too.
    summary = host.check_output(f"{BIN} check-config --config {CONFIG}")
    assert "patroni REST API: CA /etc/nmpi-failover/patroni-ca.pem, client certificate " in summary


def test_check_config_passes_as_root_and_as_the_service_user(host: Any) -> None:
    out = host.check_output(f"{BIN} check-config --config {CONFIG}")
    assert "config OK" in out
    as_user = host.run(f"runuser -u nmpi-failover -- {BIN} check-config --config {CONFIG}")
    assert as_user.rc == 0, as_user.stderr


def test_installed_from_the_wheelhouse_only(host: Any) -> None:
    check = host.run("/opt/nmpi-failover/venv/bin/pip check")
    assert check.rc == 0, check.stdout
    assert host.file("/opt/nmpi-failover/wheelhouse/requirements.txt").exists
    assert host.file("/opt/nmpi-failover/venv/.wheelhouse-id").exists


def test_command_on_the_path(host: Any) -> None:
    link = host.file("/usr/local/bin/nmpi-failover")
    assert link.is_symlink
    assert link.linked_to == BIN
    assert "nmpi-failover" in host.check_output("nmpi-failover --help")


def test_metrics_report_the_sites_down_and_the_alarm(host: Any) -> None:
    def metrics() -> str:
        result = host.run(f"busybox wget -qO- {METRICS}")
        return result.stdout if result.rc == 0 else ""

    def alarm_raised() -> str:
        text = metrics()
        return text if 'nmpi_failover_alarm{condition="etcd_unreachable"} 1.0' in text else ""

    text = eventually(alarm_raised)
    assert text, metrics()
    assert 'nmpi_failover_site_up{site="castor"} 0.0' in text
    assert 'nmpi_failover_site_up{site="jusuf"} 0.0' in text
    assert "nmpi_failover_acting_leader 0.0" in text


def test_journal_written_at_the_configured_path(host: Any) -> None:
    journal = host.file(JOURNAL)
    assert journal.exists
    assert journal.user == "nmpi-failover"
    assert journal.mode == 0o640

    def events() -> list[dict[str, Any]]:
        lines = host.file(JOURNAL).content_string.splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def alarmed() -> bool:
        return any(e.get("condition") == "etcd_unreachable" for e in events())

    assert eventually(alarmed), events()[-10:]
    kinds = {e["event"] for e in events()}
    assert {"started", "state_change", "decision"} <= kinds
