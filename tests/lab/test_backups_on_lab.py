"""Backups as site.yml deployed them on the lab: pgBackRest's repository at the witness.

The WAL archive reaches the witness from the leader, the first full backup is there (encrypted),
a differential backup is taken from the standby by the same unit the timers start, and the
restore drill brings the newest backup and every archived WAL segment back in a scratch
cluster at the witness with exactly the live database's jobs; its metrics reach Prometheus.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from nmpi_lab import deployment

from tests.support import REPO, eventually, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.lab]

TEXTFILE = "/var/lib/nmpi/node_exporter/textfile"


def _metrics(lab: deployment.Deployment, name: str) -> dict[str, float]:
    """The series of one metric in the witness's textfile folder: {labels: value}."""
    text = lab.ssh(lab.backup_repository, f"cat {TEXTFILE}/pgbackrest_*.prom")
    series = {}
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            key, value = line.rsplit(" ", 1)
            series[key[len(name) :]] = float(value)
    return series


def test_the_repository_holds_an_encrypted_full_backup(lab: deployment.Deployment) -> None:
    stanza = lab.backup_stanza()
    assert stanza["status"]["code"] == 0, stanza["status"]
    assert [repo["cipher"] for repo in stanza["repo"]] == ["aes-256-cbc"]
    kinds = [backup["type"] for backup in stanza["backup"]]
    assert "full" in kinds, kinds
    assert stanza["archive"], stanza
    assert stanza["archive"][0]["max"], stanza["archive"]


def test_wal_from_the_leader_reaches_the_witness(lab: deployment.Deployment) -> None:
    # pgBackRest's check: a WAL switch on the primary, then the segment must arrive at the witness.
    before = lab.backup_stanza()["archive"][0]["max"]
    lab.ssh(lab.backup_repository, f"{deployment.PGBACKREST} check", timeout=300)
    after = lab.backup_stanza()["archive"][0]["max"]
    assert after > before, (before, after)


def test_a_differential_backup_is_taken_from_the_standby(lab: deployment.Deployment) -> None:
    witness = lab.backup_repository
    before = len(lab.backup_stanza()["backup"])
    since = lab.ssh(witness, "date -u '+%Y-%m-%d %H:%M:%S'").strip()
    lab.ssh(witness, "sudo systemctl start nmpi-pgbackrest-backup@diff.service", timeout=900)
    backups = lab.backup_stanza()["backup"]
    assert len(backups) == before + 1, backups
    assert backups[-1]["type"] == "diff", backups[-1]
    journal = lab.ssh(
        witness, f"sudo journalctl -u nmpi-pgbackrest-backup@diff.service --since '{since}' -o cat"
    )
    done = [json.loads(line) for line in journal.splitlines() if '"backup_done"' in line]
    assert done, journal[-2000:]
    assert done[-1]["source"] == "standby", done[-1]
    assert _metrics(lab, "nmpi_backup_last_run_success") == {'{backup="database"}': 1.0}
    newest = _metrics(lab, "nmpi_backup_last_success_timestamp_seconds")['{backup="database"}']
    assert newest == backups[-1]["timestamp"]["stop"]


def test_the_restore_drill_brings_back_every_job(lab: deployment.Deployment) -> None:
    witness = lab.backup_repository
    live_jobs = int(lab.database_sql(lab.patroni_leader(), "SELECT count(*) FROM jobs"))
    lab.ssh(witness, "sudo systemctl start nmpi-pgbackrest-drill.service", timeout=1800)
    assert _metrics(lab, "nmpi_restore_drill_success") == {"": 1.0}
    rows = _metrics(lab, "nmpi_restore_drill_rows")
    # The drill forced a WAL switch and restored everything archived: every job is there.
    assert rows['{table="jobs"}'] == live_jobs, (rows, live_jobs)
    # The scratch cluster is gone afterwards (the witness's disk does not fill up).
    assert lab.ssh(witness, "sudo ls -A /srv/nmpi/pgbackrest/scratch").strip() == ""


def test_the_backup_and_drill_metrics_reach_prometheus(lab: deployment.Deployment) -> None:
    def scraped() -> dict[str, float]:
        found = {}
        for expr in (
            "nmpi_restore_drill_success",
            "nmpi_backup_last_success_timestamp_seconds",
            "pgbackrest_stanza_status",
            "pgbackrest_repo_size_bytes",
        ):
            result = lab.prometheus_query(expr)
            if result:
                found[expr] = float(result[0]["value"][1])
        return found if len(found) == 4 else {}

    found = eventually(scraped, timeout=180)
    assert found, "Prometheus has not scraped the backup metrics from the witness's node exporter"
    assert found["nmpi_restore_drill_success"] == 1
    assert found["pgbackrest_stanza_status"] == 0
    assert found["pgbackrest_repo_size_bytes"] > 0
    assert time.time() - found["nmpi_backup_last_success_timestamp_seconds"] < 3600


def test_the_backup_benchmark_prints_its_figures(lab: deployment.Deployment) -> None:
    """make bench-backup's figures, printed with the suite's output: 100,000 jobs seeded (or
    topped up), a full backup and a restore drill through their units, the repository's size."""
    result = subprocess.run(
        [sys.executable, "-m", "nmpi_lab.bench_backup"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=7200,
        check=False,
    )
    # Kept beside the suite's other logs (CI's output captures what passes).
    (REPO / ".cache" / "logs").mkdir(parents=True, exist_ok=True)
    (REPO / ".cache" / "logs" / "backup-bench.txt").write_text(result.stdout)
    print("\n" + result.stdout)
    # Exit 1: the backup or the drill failed, or the restored jobs differ from the live ones.
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "full backup time:" in result.stdout
    assert "drill restore time:" in result.stdout
    assert "drill recovery time:" in result.stdout
    assert "repository size:" in result.stdout
