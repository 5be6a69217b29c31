"""Backup and restore of the job queue's database on the deployed lab (make lab first).

    python -m nmpi_lab.bench_backup [--jobs 100000]

1. Seed: the collab `bench-100k` gets --jobs finished jobs (nmpi_lab.bench_job_manager's
   seeding: once, a re-run tops it up), then the database's size as the Patroni leader
   reports it (pg_database_size).
2. Backup: a full backup through the unit the timers start at the witness
   (nmpi-pgbackrest-backup@full.service, from the standby when one answers). Wall time of
   `systemctl start` (the shared lock, the container, pgBackRest, the metrics), and
   pgBackRest's own duration, size and stored size of the new backup (`pgbackrest info`).
3. Restore drill: nmpi-pgbackrest-drill.service restores the newest backup and every archived
   WAL segment into a scratch cluster at the witness, checks it (pg_amcheck) and counts the
   rows. Wall time, and the drill's own restore, recovery and total seconds from its journal;
   the restored jobs must be exactly the live database's jobs, counted just before.
4. Repository: what /srv/nmpi/pgbackrest/repo takes on the witness's disk (du: backups, WAL).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from nmpi_lab import deployment
from nmpi_lab.bench_job_manager import COLLAB, seed

BACKUP_UNIT = "nmpi-pgbackrest-backup@full.service"
DRILL_UNIT = "nmpi-pgbackrest-drill.service"
# pgbackrest_repo_dir (roles/pgbackrest defaults) and its repo folder, on the witness.
REPO_DIR = "/srv/nmpi/pgbackrest/repo"
DATABASE = "nmpi"
BACKUP_TIMEOUT_S = 3600
DRILL_TIMEOUT_S = 3600
MB = 1e6

EPILOG = """\
what it does (on the lab as `make lab` left it; it adds a full backup and runs one drill):
  1. seeds the collab bench-100k with --jobs finished jobs (a re-run only tops it up) and
     reads the database's size on the Patroni leader (pg_database_size)
  2. takes a full backup through nmpi-pgbackrest-backup@full.service at the witness:
     wall time of `systemctl start`, and pgBackRest's own duration (stop - start), the
     size it copied and the size it stores (compressed with zstd and encrypted)
  3. runs the restore drill through nmpi-pgbackrest-drill.service: wall time, and from its
     journal the restore (pgbackrest restore), recovery (WAL replay until promoted) and total
     seconds, and the rows of the restored jobs table
  4. measures the repository on the witness's disk (du -sb: backups and the WAL archive)

figures: MB are 10^6 bytes, seconds are wall-clock seconds. The units share a lock with the
timers' backups and drills: a scheduled run at the same moment adds its time to the wall time.

exit status: 0; 1 if the backup or the drill failed (systemctl start failed, no new full
backup in the repository) or the restored jobs differ from the live count read just before
the drill."""


@dataclass(frozen=True)
class BackupRun:
    """A full backup through its unit and what pgBackRest recorded of it."""

    wall_s: float
    error: str = ""
    label: str = ""
    source: str = ""
    pgbackrest_s: float = 0.0
    size: int = 0
    stored: int = 0


@dataclass(frozen=True)
class DrillRun:
    """The restore drill through its unit and the figures of its drill_done line."""

    wall_s: float
    error: str = ""
    restore_s: float = 0.0
    recovery_s: float = 0.0
    total_s: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)


def utc_now(lab: deployment.Deployment, witness: deployment.Host) -> str:
    """The witness's clock, as journalctl --since reads it."""
    return lab.ssh(witness, "date -u '+%Y-%m-%d %H:%M:%S UTC'").strip()


def journal_events(
    lab: deployment.Deployment, witness: deployment.Host, unit: str, since: str, *events: str
) -> list[dict[str, Any]]:
    """The unit's JSON log lines of these events since `since`, oldest first."""
    text = lab.ssh(witness, f"sudo journalctl -u {unit} --since '{since}' -o cat", timeout=60)
    found = []
    for line in text.splitlines():
        if not line.lstrip().startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("event") in events:
            found.append(record)
    return found


def start(lab: deployment.Deployment, witness: deployment.Host, unit: str, timeout: float) -> str:
    """`systemctl start` of a oneshot unit (returns when it has finished): "" or the error."""
    try:
        lab.ssh(witness, f"sudo systemctl start {unit}", timeout=timeout)
    except RuntimeError as failed:
        return str(failed)
    except subprocess.TimeoutExpired:
        return f"{unit} had not finished after {timeout:.0f} s"
    return ""


def full_backup(lab: deployment.Deployment, witness: deployment.Host) -> BackupRun:
    before = {str(b["label"]) for b in lab.backup_stanza().get("backup", [])}
    since = utc_now(lab, witness)
    started = time.monotonic()
    error = start(lab, witness, BACKUP_UNIT, BACKUP_TIMEOUT_S)
    wall = time.monotonic() - started
    if error:
        return BackupRun(wall, error=error)
    new = [
        b
        for b in lab.backup_stanza().get("backup", [])
        if b.get("type") == "full" and str(b["label"]) not in before
    ]
    if not new:
        return BackupRun(wall, error="no new full backup in the repository")
    backup = max(new, key=lambda b: float(b["timestamp"]["stop"]))
    done = journal_events(lab, witness, BACKUP_UNIT, since, "backup_done")
    info = backup.get("info", {})
    repository = info.get("repository", {})
    return BackupRun(
        wall,
        label=str(backup["label"]),
        source=f"from the {done[-1].get('source', '?')}" if done else "source not logged",
        pgbackrest_s=float(backup["timestamp"]["stop"]) - float(backup["timestamp"]["start"]),
        size=int(info.get("size", 0)),
        stored=int(repository.get("delta", repository.get("size", 0))),
    )


def restore_drill(lab: deployment.Deployment, witness: deployment.Host) -> DrillRun:
    since = utc_now(lab, witness)
    started = time.monotonic()
    error = start(lab, witness, DRILL_UNIT, DRILL_TIMEOUT_S)
    wall = time.monotonic() - started
    events = journal_events(lab, witness, DRILL_UNIT, since, "drill_done", "drill_failed")
    last = events[-1] if events else {}
    if last.get("event") == "drill_failed":
        error = f"{error}; " if error else ""
        error += f"drill_failed: {last.get('error', '?')}"
    if error:
        return DrillRun(wall, error=error)
    if last.get("event") != "drill_done":
        return DrillRun(wall, error=f"no drill_done line in the journal of {DRILL_UNIT}")
    return DrillRun(
        wall,
        restore_s=float(last["restore_s"]),
        recovery_s=float(last["recovery_s"]),
        total_s=float(last["total_s"]),
        rows={str(table): int(count) for table, count in last.get("rows", {}).items()},
    )


def repository_bytes(lab: deployment.Deployment, witness: deployment.Host) -> int:
    return int(lab.ssh(witness, f"sudo du -sb {REPO_DIR}", timeout=300).split()[0])


def line(label: str, value: str) -> None:
    print(f"{label + ':':<26}{value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmpi_lab.bench_backup",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=100_000,
        help=f"jobs in the collab {COLLAB}, 1000-1000000 (100000); more already there stay",
    )
    args = parser.parse_args(argv)
    if not 1_000 <= args.jobs <= 1_000_000:
        parser.error(f"--jobs must be 1000-1000000 (got {args.jobs})")
    lab = deployment.load()
    witness = lab.backup_repository
    seed(lab, args.jobs)
    primary = lab.patroni_leader()
    seeded = int(lab.database_sql(primary, f"SELECT count(*) FROM jobs WHERE collab = '{COLLAB}'"))
    database = int(lab.database_sql(primary, f"SELECT pg_database_size('{DATABASE}')"))
    backup = full_backup(lab, witness)
    live: int | None = None
    drill: DrillRun | None = None
    if not backup.error:
        live = int(lab.database_sql(lab.patroni_leader(), "SELECT count(*) FROM jobs"))
        drill = restore_drill(lab, witness)
    repository = repository_bytes(lab, witness)

    print(f"backup benchmark: {seeded} jobs in collab {COLLAB}, stanza nmpi at {witness.name}")
    line("database size", f"{database / MB:.1f} MB (pg_database_size on {primary.name})")
    if backup.error:
        line("full backup", f"FAILED after {backup.wall_s:.1f} s: {backup.error}")
    else:
        line("full backup time", f"{backup.wall_s:.1f} s wall (systemctl start {BACKUP_UNIT})")
        line(
            "full backup, pgBackRest",
            f"{backup.pgbackrest_s:.1f} s (backup {backup.label}, {backup.source})",
        )
        line("backup size", f"{backup.size / MB:.1f} MB copied from the database")
        ratio = f"{backup.size / backup.stored:.1f} times smaller" if backup.stored else "n/a"
        line(
            "backup stored",
            f"{backup.stored / MB:.1f} MB in the repository (compressed and encrypted: {ratio})",
        )
    ok = not backup.error
    if drill is None:
        line("restore drill", "not run (the backup failed)")
    elif drill.error:
        line("restore drill", f"FAILED after {drill.wall_s:.1f} s: {drill.error}")
        ok = False
    else:
        line("drill restore time", f"{drill.restore_s:.1f} s (pgbackrest restore)")
        line("drill recovery time", f"{drill.recovery_s:.1f} s (WAL replay until promoted)")
        line(
            "drill total time",
            f"{drill.total_s:.1f} s (with pg_amcheck and row counts), {drill.wall_s:.1f} s wall",
        )
        restored = drill.rows.get("jobs")
        if restored is None:
            line("restored jobs", "no jobs table in the restored cluster")
        else:
            verdict = "the same" if restored == live else "DIFFERENT"
            line(
                "restored jobs", f"{restored} rows (live just before the drill: {live}, {verdict})"
            )
        ok = ok and restored is not None and restored == live
    line("repository size", f"{repository / MB:.1f} MB (du -sb {REPO_DIR} on {witness.name})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
