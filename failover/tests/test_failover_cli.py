"""The installed `nmpi-failover` command, run as operators run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from failover_services import (
    CASTOR_IP,
    JUSUF_IP,
    EtcdMember,
    World,
    build_world,
    etcd,  # noqa: F401 - fixture
    free_port,
    write_config,
)
from failover_testkit import EXAMPLE, lab_files
from nmpi_failover.journal import read_tail

COMMAND = Path(sys.executable).parent / "nmpi-failover"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMMAND), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    lab_files(tmp_path)
    path = tmp_path / "lab.yaml"
    path.write_text(EXAMPLE.read_text())
    return path


def test_check_config_accepts_the_example(lab: Path) -> None:
    result = run("check-config", "--config", str(lab))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"config OK: {lab}")
    assert "castor (192.0.2.10, preferred)" in result.stdout
    assert "rfc2136 via 10.30.0.53:53" in result.stdout
    assert "patroni REST API: CA default bundle, client certificate none" in result.stdout


def test_check_config_reads_the_environment_default(lab: Path) -> None:
    result = run("check-config", env={"NMPI_FAILOVER_CONFIG": str(lab)})
    assert result.returncode == 0, result.stderr


def test_check_config_rejects_with_exit_2_and_names_every_key(lab: Path) -> None:
    text = lab.read_text().replace("preferred_site: castor", "preferred_site: castr")
    broken = lab.with_name("broken.yaml")
    broken.write_text(text)
    result = run("check-config", "-c", str(broken))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"config invalid: {broken}",
        "  preferred_site: 'castr' is not one of the sites (castor, jusuf)",
    ]


def test_check_config_names_the_patroni_tls_keys(lab: Path) -> None:
    broken = lab.with_name("broken.yaml")
    broken.write_text(
        lab.read_text() + "patroni:\n  ca_file: missing-ca.pem\n  cert_file: lab-ca.pem\n"
    )
    result = run("check-config", "-c", str(broken))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"config invalid: {broken}",
        f"  patroni.ca_file: file not found: {lab.parent}/missing-ca.pem",
    ]
    broken.write_text(lab.read_text() + "patroni:\n  cert_file: lab-ca.pem\n")
    result = run("check-config", "-c", str(broken))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"config invalid: {broken}",
        "  patroni.key_file: required when the other of patroni.cert_file/patroni.key_file is set",
    ]


def test_check_config_skip_files_checks_a_config_whose_files_are_elsewhere(
    tmp_path: Path, lab: Path
) -> None:
    # Rendered on a controller before it is installed: the CA, TLS and TSIG files it names are
    # on the target host only.
    rendered = tmp_path / "elsewhere" / "config.yaml"
    rendered.parent.mkdir()
    rendered.write_text(lab.read_text() + "patroni:\n  ca_file: /nowhere/ca.pem\n")
    result = run("check-config", "-c", str(rendered))
    assert result.returncode == 2
    assert "file not found" in result.stderr
    result = run("check-config", "-c", str(rendered), "--skip-files")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"config OK: {rendered}")


def test_check_config_skip_files_still_applies_every_rule(lab: Path) -> None:
    broken = lab.with_name("broken.yaml")
    broken.write_text(
        lab.read_text().replace("preferred_site: castor", "preferred_site: castr")
        + "patroni:\n  cert_file: /nowhere/client.pem\n"
    )
    result = run("check-config", "-c", str(broken), "--skip-files")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"config invalid: {broken}",
        "  preferred_site: 'castr' is not one of the sites (castor, jusuf)",
        "  patroni.key_file: required when the other of patroni.cert_file/patroni.key_file is set",
    ]


def test_check_config_names_reports_each_key_under_its_name(lab: Path) -> None:
    names = lab.with_name("names.yaml")
    names.write_text(
        "sites: site_list\ninterval: round_interval\nprobe_timeout: round_probe_timeout\n"
    )
    text = lab.read_text()
    broken = lab.with_name("broken.yaml")
    broken.write_text(text.replace("probe_url: https://192.0.2.10/readyz", "probe_url: x"))
    result = run("check-config", "-c", str(broken), "--skip-files", "--names", str(names))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"config invalid: {broken}"
    assert lines[1].startswith("  site_list[0].probe_url (sites[0].probe_url): must be an https://")
    broken.write_text(text.replace("probe_timeout: 1.5 ", "probe_timeout: 2.0 "))
    result = run("check-config", "-c", str(broken), "--skip-files", "--names", str(names))
    assert result.stderr.splitlines()[1:] == [
        "  round_probe_timeout (probe_timeout): 2 s must be shorter than interval (2 s), or a "
        "round's observation would be stale [interval: round_interval]"
    ]


def test_check_config_refuses_a_names_file_that_is_not_a_mapping(lab: Path) -> None:
    names = lab.with_name("names.yaml")
    names.write_text("- sites\n")
    result = run("check-config", "-c", str(lab), "--names", str(names))
    assert result.returncode == 2
    assert "not a mapping of key to name" in result.stderr


def test_check_config_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = run("check-config", "-c", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_help_teaches() -> None:
    result = run("--help")
    assert result.returncode == 0
    for text in (
        "floating IPs",
        "never fails back by itself",
        "watch",
        "status",
        "switchover",
        "failback",
        "check-config",
        "examples:",
        "nmpi-failover switchover --to jusuf",
        "exit status: 0 success, 1 failure or refusal, 2 invalid configuration",
    ):
        assert text in result.stdout


@pytest.mark.parametrize("command", ["switchover", "failback"])
def test_switchover_and_failback_explain_what_they_wait_for(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--wait SECONDS" in text
    assert "synchronous standby" in text
    assert "0: refuse at once (default: 60)" in text


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_wait_must_be_seconds(value: str) -> None:
    result = run("failback", "--wait", value)
    assert result.returncode == 2
    assert "--wait" in result.stderr


def test_switchover_requires_a_target() -> None:
    result = run("switchover")
    assert result.returncode == 2
    assert "--to" in result.stderr


@pytest.mark.parametrize("command", ["watch", "status", "switchover", "failback"])
def test_every_command_has_examples(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert f"nmpi-failover {command}" in result.stdout


# --- against nothing: every service unreachable on loopback ----------------------------------


@pytest.fixture
def nowhere(tmp_path: Path) -> Path:
    """A valid config whose every endpoint is a closed loopback port."""

    def closed() -> str:
        return f"127.0.0.1:{free_port()}"

    return write_config(
        tmp_path / "nowhere",
        probe_urls=(f"https://{closed()}/readyz", f"https://{closed()}/readyz"),
        patroni_urls=([f"http://{closed()}"], [f"http://{closed()}"]),
        etcd_urls=[f"http://{closed()}"],
        dns_port=free_port(),
    )


def test_status_json_reports_what_it_cannot_see(nowhere: Path) -> None:
    start = time.monotonic()
    result = run("status", "--json", "-c", str(nowhere))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 10
    report = json.loads(result.stdout)
    assert [s["name"] for s in report["sites"]] == ["castor", "jusuf"]
    assert all(not s["probe"]["ok"] for s in report["sites"])
    assert report["sites"][0]["probe"]["error"].startswith("connect")
    assert report["cluster_readable"] is False
    assert report["leader"] is None
    assert report["dns"] is None
    assert report["lease"] == {"status": "etcd_unreachable", "holder": None}
    assert report["events"] == []
    assert report["redundancy"] == {
        "ok": None,  # unknown: Patroni unreadable
        "sync_standby": None,
        "leader_timeline": None,
        "alarms": [],
    }


def test_status_check_fails_unless_redundancy_is_known_good(nowhere: Path) -> None:
    result = run("status", "--check", "--json", "-c", str(nowhere))
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["redundancy"]["ok"] is None  # the report is still printed


def test_status_table_says_what_is_unreadable(nowhere: Path) -> None:
    result = run("status", "-c", str(nowhere))
    assert result.returncode == 0, result.stderr
    assert "castor" in result.stdout
    assert "FAILING: connect" in result.stdout
    assert "database: Patroni unreadable at every site" in result.stdout
    assert "public name: unreadable" in result.stdout
    assert "acting instance: unknown (etcd quorum unreachable)" in result.stdout
    assert "redundancy: unknown (Patroni unreadable)" in result.stdout


def test_switchover_is_refused_with_the_reason_and_journaled(nowhere: Path) -> None:
    result = run("switchover", "--to", "jusuf", "--yes", "-c", str(nowhere))
    assert result.returncode == 1
    assert "refused: Patroni cluster state unreadable at every site" in result.stderr
    events = read_tail(nowhere.parent / "journal.jsonl", 10)
    assert [e["event"] for e in events] == ["switchover_refused"]
    assert events[0]["to_site"] == "jusuf"


def test_switchover_to_an_unknown_site_is_refused(nowhere: Path) -> None:
    result = run("switchover", "--to", "pollux", "--yes", "-c", str(nowhere))
    assert result.returncode == 1
    assert "unknown site 'pollux'; the sites are castor, jusuf" in result.stderr


def test_watch_dry_run_stops_gracefully_on_sigterm(nowhere: Path) -> None:
    config = nowhere.read_text()
    listen = next(line.split(": ")[1] for line in config.splitlines() if "metrics_listen" in line)
    process = subprocess.Popen(
        [str(COMMAND), "watch", "--dry-run", "-c", str(nowhere)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        metrics = ""
        deadline = time.monotonic() + 20
        while "nmpi_failover_site_up" not in metrics and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                metrics = httpx.get(f"http://{listen}/metrics", trust_env=False).text
            except httpx.HTTPError:
                continue
        time.sleep(1.5)  # a round or two
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert 'nmpi_failover_site_up{site="castor"} 0.0' in metrics
    logs = [json.loads(line) for line in stderr.splitlines()]
    assert logs[0]["message"] == "started"
    assert logs[0]["dry_run"] is True
    assert logs[-1]["message"] == "stopped, lease released"
    alarms = [log for log in logs if log.get("condition") == "etcd_unreachable"]
    assert len(alarms) == 1  # logged when raised, not every round
    assert alarms[0]["level"] == "WARNING"
    events = [e["event"] for e in read_tail(nowhere.parent / "journal.jsonl", 100)]
    assert events[0] == "started"
    assert events[-1] == "stopped"
    assert "decision" in events


# --- against the loopback world: a planned switchover and a failback --------------------------


@pytest.fixture
def world(tmp_path: Path, etcd: EtcdMember) -> Iterator[World]:  # noqa: F811
    yield from build_world(tmp_path, etcd.url)


def test_switchover_and_failback_move_leader_and_name(world: World, tmp_path: Path) -> None:
    import yaml

    config = tmp_path / "config" / "config.yaml"
    assert yaml.safe_load(config.read_text())["dns"]["rfc2136"]["port"] == world.bind.port

    status = run("status", "-c", str(config))
    assert status.returncode == 0, status.stderr
    assert "database leader: castor-db-1 at castor" in status.stdout
    assert f"public name: nmpi.lab.example. -> {CASTOR_IP} (castor), ttl 30 s" in status.stdout
    assert "redundancy: ok (synchronous standby jusuf-db-1 streaming; leader on timeline 7)" in (
        status.stdout
    )
    assert "ALARM" not in status.stdout

    unconfirmed = run("switchover", "--to", "jusuf", "-c", str(config))  # stdin is no tty
    assert unconfirmed.returncode == 1
    assert "pass --yes" in unconfirmed.stderr
    assert world.cluster.posts == []

    done = run("switchover", "--to", "jusuf", "--yes", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert "plan: switch the database leader from castor-db-1 (castor) to jusuf-db-1" in done.stdout
    assert f"now points at {JUSUF_IP} (jusuf)" in done.stdout
    assert world.cluster.posts[0]["path"] == "/switchover"
    assert world.bind.query() == {JUSUF_IP}

    again = run("switchover", "--to", "jusuf", "--yes", "-c", str(config))
    assert again.returncode == 1
    assert "refused: the leader jusuf-db-1 is already at jusuf" in again.stderr

    world.castor.status = 503
    refused = run("failback", "--yes", "-c", str(config))
    assert refused.returncode == 1
    assert "refused: castor does not serve healthy (HTTP 503 Service Unavailable)" in refused.stderr
    world.castor.status = 200
    back = run("failback", "--yes", "-c", str(config))
    assert back.returncode == 0, back.stderr
    assert world.cluster.leader == "castor-db-1"
    assert world.bind.query() == {CASTOR_IP}

    events = [e["event"] for e in world.events()]
    assert events == [
        "switchover_requested",
        "switchover_done",
        "dns_pointed",
        "switchover_refused",
        "switchover_refused",
        "switchover_requested",
        "switchover_done",
        "dns_pointed",
    ]
    status = run("status", "--events", "3", "-c", str(config))
    assert "recent events:" in status.stdout
    assert "dns_pointed" in status.stdout

    # The old leader rejoined on the new timeline: redundant (exit 0 with --check) ...
    assert run("status", "--check", "-c", str(config)).returncode == 0
    # ... until it is stopped: its member key expires and no standby replicates.
    del world.cluster.members["jusuf-db-1"]
    lost = run("status", "--check", "-c", str(config))
    assert lost.returncode == 1
    assert "redundancy: LOST (2 alarms)" in lost.stdout
    alarms = [line.split(":")[0] for line in lost.stdout.splitlines() if line.startswith("ALARM")]
    assert alarms == ["ALARM no_sync_standby", "ALARM member_missing jusuf-db-1"]
    assert run("status", "-c", str(config)).returncode == 0  # no --check: always 0


def test_failback_right_after_a_switchover_waits_out_patronis_sync_standby_refusal(
    world: World, tmp_path: Path
) -> None:
    """The chaos suite's finding: right after a role change the old primary is a plain
    replica until the new leader's next loop names it the synchronous standby, and Patroni
    refuses a switchover to it until then (412). The fake answers no /config and shows no
    synchronous role then, so the command asks at once and retries Patroni's refusal."""
    config = tmp_path / "config" / "config.yaml"
    done = run("switchover", "--to", "jusuf", "--yes", "-c", str(config))
    assert done.returncode == 0, done.stderr
    rejoined = world.cluster.members["castor-db-1"]
    rejoined.role = "replica"  # back, streaming, not named yet

    at_once = run("failback", "--yes", "--wait", "0", "-c", str(config))
    assert at_once.returncode == 1
    assert (
        "failed: Patroni refused /switchover (HTTP 412): candidate name does not match with "
        "sync_standby (the leader names its synchronous standby at its next loop: retry in a "
        "few seconds, or let the command wait for it (--wait SECONDS))"
    ) in at_once.stderr
    assert world.cluster.leader == "jusuf-db-1"

    posts = len(world.cluster.posts)
    # Named once the command's first request was refused: it must have waited (not a timer,
    # which a slow start of the command on a loaded machine could outrun).
    world.cluster.after_sync_refusal = lambda: setattr(rejoined, "role", "sync_standby")
    try:
        back = run("failback", "--yes", "--wait", "30", "-c", str(config))
    finally:
        world.cluster.after_sync_refusal = None
    assert back.returncode == 0, back.stderr
    assert (
        "waiting up to 30 s for Patroni to take castor-db-1 as its synchronous standby"
    ) in back.stdout
    assert f"now points at {CASTOR_IP} (castor)" in back.stdout
    assert world.cluster.leader == "castor-db-1"
    assert len(world.cluster.posts) - posts >= 2  # refused at least once, then taken
    events = [e["event"] for e in world.events()]
    assert events[-4:] == [
        "switchover_failed",  # the --wait 0 run
        "switchover_requested",
        "switchover_done",
        "dns_pointed",
    ]
