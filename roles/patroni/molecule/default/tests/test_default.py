"""Verify patroni: castor leads, jusuf is the streaming synchronous standby, TLS everywhere."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

testinfra_hosts = ["all"]

DB = {"patroni-castor", "patroni-jusuf"}
CA = "/etc/nmpi/pki/ca.crt"
SECRETS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "secrets"


def name_of(host: Any) -> str:
    return str(host.backend.get_hostname())


def address(host: Any) -> str:
    """The VM's address on the scenario's network (eth0)."""
    return next(str(a) for a in host.interface("eth0").addresses if ":" not in str(a))


@pytest.fixture
def db(host: Any) -> Any:
    if name_of(host) not in DB:
        pytest.skip("not a database VM")
    return host


def rest(host: Any, path: str) -> Any:
    out = host.check_output(
        f"docker exec nmpi-patroni curl -fsS --cacert {CA} https://127.0.0.1:8008{path}"
    )
    return json.loads(out)


def app_password() -> str:
    return (SECRETS / "app").read_text().split()[0]


def psql(host: Any, target: str, sql: str, sslmode: str = "verify-full") -> Any:
    dsn = (
        f"host={target} port=5432 dbname=nmpi user=nmpi sslmode={sslmode} "
        f"sslrootcert={CA} connect_timeout=5"
    )
    return host.run(
        f"docker exec -e PGPASSWORD={app_password()} nmpi-patroni "
        f'psql "{dsn}" -X -A -t -v ON_ERROR_STOP=1 -c "{sql}"'
    )


def test_castor_leads_and_jusuf_is_the_streaming_sync_standby(db: Any) -> None:
    members = {m["name"]: m for m in rest(db, "/cluster")["members"]}
    assert members["patroni-castor"]["role"] == "leader"
    assert members["patroni-castor"]["state"] == "running"
    assert members["patroni-jusuf"]["role"] == "sync_standby"
    assert members["patroni-jusuf"]["state"] == "streaming"


def test_priority_and_site_tags(db: Any) -> None:
    tags = rest(db, "/patroni")["tags"]
    site = name_of(db).removeprefix("patroni-")
    assert tags["site"] == site
    assert tags["failover_priority"] == (2 if site == "castor" else 1)


def test_dynamic_configuration_in_etcd(db: Any) -> None:
    config = rest(db, "/config")
    assert config["synchronous_mode"] is True
    assert config["synchronous_mode_strict"] is False
    assert config["postgresql"]["use_pg_rewind"] is True
    assert (config["ttl"], config["loop_wait"], config["retry_timeout"]) == (20, 4, 8)
    assert config["postgresql"]["parameters"]["ssl"] == "on"


def test_row_written_on_the_leader_is_read_on_the_standby(host: Any) -> None:
    if name_of(host) != "patroni-castor":
        pytest.skip("written once, from castor")
    castor = address(host)
    marker = f"molecule-{time.time_ns()}"
    write = psql(
        host,
        castor,
        f"CREATE TABLE IF NOT EXISTS probe (note text); INSERT INTO probe VALUES ('{marker}')",
    )
    assert write.rc == 0, write.stderr
    jusuf = host.backend.run(  # the standby's address, seen from castor's resolver
        "getent hosts patroni-jusuf"
    ).stdout.split()[0]
    seen = ""
    for _ in range(20):
        read = psql(host, jusuf, f"SELECT note FROM probe WHERE note = '{marker}'")
        assert read.rc == 0, read.stderr
        seen = read.stdout.strip()
        if seen == marker:
            break
        time.sleep(0.5)
    assert seen == marker
    on_standby = psql(host, jusuf, "SELECT pg_is_in_recovery()")
    assert on_standby.stdout.strip() == "t"


def test_application_connections_need_tls(db: Any) -> None:
    target = address(db)
    assert psql(db, target, "SELECT 1").stdout.strip() == "1"
    plain = psql(db, target, "SELECT 1", sslmode="disable")
    assert plain.rc != 0
    assert "pg_hba.conf rejects connection" in plain.stderr, plain.stderr
    assert "no encryption" in plain.stderr, plain.stderr


def test_replication_runs_over_tls(host: Any) -> None:
    if name_of(host) != "patroni-castor":
        pytest.skip("the leader's view")
    out = host.check_output(
        "docker exec nmpi-patroni psql -X -A -t -d postgres -c "
        '"SELECT r.application_name, r.sync_state, s.ssl FROM pg_stat_replication r '
        'JOIN pg_stat_ssl s USING (pid)"'
    )
    assert out.strip() == "patroni-jusuf|sync|t", out


def test_rest_api_unsafe_calls_need_a_client_certificate(db: Any) -> None:
    code = db.check_output(
        "docker exec nmpi-patroni curl -s -o /dev/null -w '%{http_code}' "
        f"--cacert {CA} -X POST https://127.0.0.1:8008/reload"
    )
    assert code == "403"


def test_patronictl_in_the_container(db: Any) -> None:
    listed = json.loads(db.check_output("docker exec nmpi-patroni patronictl list -f json"))
    assert {m["Member"] for m in listed} == DB


def test_container_and_files(db: Any) -> None:
    info = json.loads(db.check_output("docker inspect nmpi-patroni"))[0]
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert info["Config"]["Image"].startswith("nmpi/patroni:")
    config = db.file("/etc/nmpi/patroni/patroni.yml")
    assert config.mode == 0o600
    assert config.uid == 100
    assert db.file("/srv/nmpi/patroni").mode == 0o700
    assert db.file("/srv/nmpi/patroni/pgdata/PG_VERSION").content_string.strip() == "15"


def test_postgres_exporter_reads_its_member_and_wants_a_client_certificate(db: Any) -> None:
    # The exporter logs in as the monitoring role over TLS on loopback: pg_up 1 and the
    # database collector's figures; a scrape without the host's certificate is refused.
    tls = f"--cacert {CA} --cert /etc/nmpi/pki/host.crt --key /etc/nmpi/pki/host.key"
    # curl of the Patroni container (host network, the host's TLS files mounted).
    body = db.check_output(
        f"docker exec nmpi-patroni curl -fsS {tls} https://127.0.0.1:9187/metrics"
    )
    assert "\npg_up 1\n" in body
    # Every series carries server="127.0.0.1:5432" besides its own labels.
    assert re.search(r'^pg_database_size_bytes\{datname="nmpi",[^}]*\} [0-9.e+]+$', body, re.M)
    assert re.search(r'^pg_stat_database_xact_commit\{[^}]*datname="nmpi"[^}]*\} ', body, re.M)
    assert (
        db.run(
            f"docker exec nmpi-patroni curl -fsS --cacert {CA} https://127.0.0.1:9187/metrics"
        ).rc
        != 0
    )
    # The role is a monitor, not a writer.
    assert (
        db.run(
            "docker exec nmpi-patroni psql -X -A -t -d postgres -c "
            "\"SELECT pg_has_role('nmpi_monitor', 'pg_monitor', 'member'), "
            "rolsuper FROM pg_roles WHERE rolname = 'nmpi_monitor'\""
        ).stdout.strip()
        == "t|f"
    )
    exporter = db.docker("nmpi-postgres-exporter").inspect()
    assert exporter["Config"]["User"] == "100:101"
    assert not any("PASS=" in e for e in exporter["Config"]["Env"])


def test_witness_runs_etcd_only(host: Any) -> None:
    if name_of(host) != "patroni-witness":
        pytest.skip("the witness only")
    names = host.check_output("docker ps --format '{{.Names}}'").split()
    assert names == ["nmpi-etcd"]
