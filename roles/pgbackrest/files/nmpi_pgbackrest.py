#!/usr/bin/env python3
"""The repository host's pgBackRest jobs: backups, metrics and the restore drill.

Runs inside the repository host's pgBackRest container (the Patroni image: Python 3.11's
standard library only), started by the host's systemd timers through `docker exec`:

  nmpi_pgbackrest.py backup --type full|diff|incr   a backup, then the metrics
  nmpi_pgbackrest.py metrics                        the metrics from the repository alone
  nmpi_pgbackrest.py drill                          restore the latest backup into a scratch
                                                    cluster, check it, then the metrics

Every run writes its metrics as Prometheus text into the metrics folder (one file per job,
atomic rename); the host's unit copies them into the node exporter's textfile folder. Logs are
JSON lines on stderr (the journal keeps them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STANZA = os.environ.get("NMPI_PGBACKREST_STANZA", "nmpi")
METRICS_DIR = Path(os.environ.get("NMPI_PGBACKREST_METRICS_DIR", "/var/lib/pgbackrest/metrics"))
REPO_PATH = Path(os.environ.get("NMPI_PGBACKREST_REPO_PATH", "/var/lib/pgbackrest/repo"))
DRILL_CONFIG = os.environ.get("NMPI_PGBACKREST_DRILL_CONFIG", "/etc/pgbackrest/drill.conf")
# The scratch cluster: at the path the members' PGDATA has (its restored configuration names it).
SCRATCH_DATA = Path(os.environ.get("NMPI_PGBACKREST_SCRATCH", "/var/lib/postgresql/data"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# pgBackRest 2.45's answer when backup-standby finds no standby (a site is down): exit code 56.
NO_STANDBY_EXIT = 56
NO_STANDBY_TEXT = "unable to find standby cluster"
# Tables whose rows the drill counts in the restored cluster (the job queue's own).
DRILL_TABLES = ("jobs", "job_logs", "comments", "projects", "quotas", "code_archives")
DRILL_DATABASE = os.environ.get("NMPI_PGBACKREST_DRILL_DATABASE", "nmpi")
SCRATCH_PORT = 15432
STANZA_STATUS_HELP = (
    "The stanza's status as pgbackrest info reports it (0 ok, 2 no valid backup, 99 other)."
)
START_TIMEOUT_S = 900


def log(event: str, **fields: Any) -> None:
    """One JSON line on stderr."""
    record = {"ts": round(time.time(), 3), "event": event, "stanza": STANZA, **fields}
    print(json.dumps(record, default=str), file=sys.stderr, flush=True)


def run(
    argv: list[str], *, check: bool = True, timeout: float | None = None, quiet: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a command, its output captured and logged on failure (quiet: not logged before)."""
    if not quiet:
        log("run", argv=argv)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        log(
            "failed",
            argv=argv,
            code=done.returncode,
            stderr=done.stderr[-4000:],
            stdout=done.stdout[-2000:],
        )
        raise CommandError(argv, done.returncode, done.stderr + done.stdout)
    return done


class CommandError(RuntimeError):
    def __init__(self, argv: list[str], code: int, output: str) -> None:
        super().__init__(f"{argv[0]} {' '.join(argv[1:3])} exited {code}")
        self.code = code
        self.output = output


# --- metrics ---------------------------------------------------------------------------------


@dataclass
class Metrics:
    """Prometheus text exposition, written atomically."""

    lines: list[str] = field(default_factory=list)
    declared: set[str] = field(default_factory=set)

    def add(self, name: str, kind: str, help_text: str, value: float, **labels: str) -> None:
        if name not in self.declared:
            self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            self.declared.add(name)
        rendered = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
        self.lines.append(
            f"{name}{{{rendered}}} {value:.17g}" if rendered else f"{name} {value:.17g}"
        )

    def write(self, job: str) -> Path:
        METRICS_DIR.mkdir(parents=True, exist_ok=True)
        target = METRICS_DIR / f"pgbackrest_{job}.prom"
        with tempfile.NamedTemporaryFile("w", dir=METRICS_DIR, prefix=".tmp-", delete=False) as out:
            out.write("\n".join(self.lines) + "\n")
        os.chmod(out.name, 0o644)
        os.replace(out.name, target)
        return target


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def info() -> dict[str, Any]:
    """The stanza as `pgbackrest info --output=json` reports it."""
    done = run(["pgbackrest", f"--stanza={STANZA}", "--output=json", "info"], timeout=300)
    stanzas = json.loads(done.stdout)
    if not isinstance(stanzas, list) or not stanzas:
        raise RuntimeError(f"pgbackrest info returned no stanza {STANZA}")
    stanza: dict[str, Any] = stanzas[0]
    return stanza


def repository_metrics(metrics: Metrics) -> None:
    """What the repository says: the stanza's status, the newest backup of each type, its size."""
    stanza = info()
    status = int(stanza.get("status", {}).get("code", 99))
    metrics.add(
        "pgbackrest_stanza_status",
        "gauge",
        STANZA_STATUS_HELP,
        status,
        stanza=STANZA,
    )
    backups = [b for b in stanza.get("backup", []) if not b.get("error", False)]
    newest: dict[str, dict[str, Any]] = {}
    for backup in backups:
        kind = str(backup.get("type", "full"))
        if kind not in newest or backup["timestamp"]["stop"] >= newest[kind]["timestamp"]["stop"]:
            newest[kind] = backup
    for kind, backup in sorted(newest.items()):
        stamps = backup["timestamp"]
        metrics.add(
            "pgbackrest_backup_last_completion_timestamp_seconds",
            "gauge",
            "When the newest backup of this type finished (Unix time).",
            stamps["stop"],
            stanza=STANZA,
            backup_type=kind,
        )
        metrics.add(
            "pgbackrest_backup_last_duration_seconds",
            "gauge",
            "How long the newest backup of this type took.",
            stamps["stop"] - stamps["start"],
            stanza=STANZA,
            backup_type=kind,
        )
        metrics.add(
            "pgbackrest_backup_last_size_bytes",
            "gauge",
            "Size of the database the newest backup of this type copied (before compression).",
            backup.get("info", {}).get("size", 0),
            stanza=STANZA,
            backup_type=kind,
        )
        metrics.add(
            "pgbackrest_backup_last_repo_size_bytes",
            "gauge",
            "Size the newest backup of this type takes in the repository (compressed, encrypted).",
            backup.get("info", {}).get("repository", {}).get("delta", 0),
            stanza=STANZA,
            backup_type=kind,
        )
    if backups:
        metrics.add(
            "nmpi_backup_last_success_timestamp_seconds",
            "gauge",
            "When the newest successful backup finished (Unix time).",
            max(b["timestamp"]["stop"] for b in backups),
            backup="database",
        )
    metrics.add(
        "pgbackrest_backup_count",
        "gauge",
        "Backups in the repository.",
        len(backups),
        stanza=STANZA,
    )
    metrics.add(
        "pgbackrest_repo_size_bytes",
        "gauge",
        "Bytes the repository takes on disk (backups and WAL archive).",
        tree_size(REPO_PATH),
        stanza=STANZA,
    )


def tree_size(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # expired meanwhile
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


# --- backup ----------------------------------------------------------------------------------


def without_standby_fallback(argv: list[str]) -> str:
    """Run a pgBackRest command that wants a standby; without one (its site is down), again
    against the primary alone (2.45 has no "prefer a standby"). Returns the source used."""
    try:
        run(argv, timeout=None)
        return "standby"
    except CommandError as failed:
        if failed.code != NO_STANDBY_EXIT or NO_STANDBY_TEXT not in failed.output:
            raise
    log("no_standby", action="again from the primary alone", argv=argv)
    run([*argv[:-1], "--no-backup-standby", argv[-1]], timeout=None)
    return "primary"


def backup(kind: str) -> int:
    """A backup from the standby when one answers, else from the primary; then the metrics."""
    started = time.time()
    metrics = Metrics()
    ok = False
    try:
        source = without_standby_fallback(
            ["pgbackrest", f"--stanza={STANZA}", f"--type={kind}", "backup"]
        )
        ok = True
        log("backup_done", type=kind, source=source, seconds=round(time.time() - started, 1))
    except (CommandError, subprocess.TimeoutExpired) as failed:
        log("backup_failed", type=kind, error=str(failed))
    metrics.add(
        "nmpi_backup_last_run_success",
        "gauge",
        "1 if the last scheduled backup run succeeded, 0 if it failed.",
        1 if ok else 0,
        backup="database",
    )
    metrics.add(
        "nmpi_backup_last_run_timestamp_seconds",
        "gauge",
        "When the last backup run ended (Unix time), successful or not.",
        time.time(),
        backup="database",
    )
    metrics.write("backup_run")
    refresh_metrics()
    return 0 if ok else 1


def refresh_metrics() -> int:
    metrics = Metrics()
    try:
        repository_metrics(metrics)
    except (CommandError, subprocess.TimeoutExpired, RuntimeError, ValueError, KeyError) as failed:
        log("info_failed", error=str(failed))
        # The newest backup's time stays published (BackupStale keeps watching it).
        newest = previous_value("repository", "nmpi_backup_last_success_timestamp_seconds")
        if newest is not None:
            metrics.add(
                "nmpi_backup_last_success_timestamp_seconds",
                "gauge",
                "When the newest successful backup finished (Unix time).",
                newest,
                backup="database",
            )
        metrics.add(
            "pgbackrest_stanza_status",
            "gauge",
            STANZA_STATUS_HELP,
            99,
            stanza=STANZA,
        )
        metrics.write("repository")
        return 1
    metrics.write("repository")
    return 0


# --- the restore drill -----------------------------------------------------------------------


def scratch_connection(database: str = "postgres") -> list[str]:
    """The scratch cluster's connection options: its socket, the container's postgres user."""
    socket = str(SCRATCH_DATA / "socket")
    return ["-h", socket, "-p", str(SCRATCH_PORT), "-U", "postgres", "-d", database]


def psql(sql: str, database: str = "postgres") -> str:
    argv = [
        str(PG_BIN / "psql"),
        "-X",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        *scratch_connection(database),
    ]
    return run([*argv, "-c", sql], timeout=600).stdout.strip()


def clear_scratch() -> None:
    """Empty the scratch folder (the mount point itself stays)."""
    for entry in SCRATCH_DATA.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def drill() -> int:
    """Restore the newest backup with all archived WAL into a scratch cluster and check it."""
    started = time.time()
    metrics = Metrics()
    ok = False
    counts: dict[str, int] = {}
    postgres: subprocess.Popen[str] | None = None
    pgdata = SCRATCH_DATA / "pgdata"
    try:
        # The newest WAL reaches the repository first (pg_switch_wal on the primary, then wait).
        without_standby_fallback(["pgbackrest", f"--stanza={STANZA}", "check"])
        checked = time.time()
        clear_scratch()
        (SCRATCH_DATA / "socket").mkdir(mode=0o700)
        pgdata.mkdir(mode=0o700)
        # archive-mode=off: the scratch cluster must never push WAL into the production archive.
        run(
            [
                "pgbackrest",
                f"--config={DRILL_CONFIG}",
                f"--stanza={STANZA}",
                "--type=default",
                "--archive-mode=off",
                "restore",
            ],
            timeout=None,
        )
        restored = time.time()
        # The container's postgres user on the socket only (the backup's pg_hba is the members').
        (pgdata / "pg_hba.conf").write_text("local all postgres peer\n")
        postgres = subprocess.Popen(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(pgdata),
                "-c",
                f"port={SCRATCH_PORT}",
                "-c",
                "listen_addresses=",
                "-c",
                f"unix_socket_directories={SCRATCH_DATA / 'socket'}",
                "-c",
                "archive_mode=off",
                "-c",
                "synchronous_standby_names=",
                "-c",
                "primary_conninfo=",
                "-c",
                "ssl=off",
                "-c",
                "shared_buffers=64MB",
                "-c",
                "hot_standby=on",
                "-c",
                "logging_collector=off",
                "-c",
                f"hba_file={pgdata / 'pg_hba.conf'}",
                "-c",
                f"ident_file={pgdata / 'pg_ident.conf'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_promoted(postgres)
        recovered = time.time()
        run(
            [
                str(PG_BIN / "pg_amcheck"),
                "--all",
                "--heapallindexed",
                "--install-missing",
                "-h",
                str(SCRATCH_DATA / "socket"),
                "-p",
                str(SCRATCH_PORT),
                "-U",
                "postgres",
            ],
            timeout=None,
        )
        for table in DRILL_TABLES:
            exists = psql(f"SELECT to_regclass('public.{table}') IS NOT NULL", DRILL_DATABASE)
            if exists == "t":
                counts[table] = int(psql(f"SELECT count(*) FROM public.{table}", DRILL_DATABASE))
        ok = True
        log(
            "drill_done",
            check_s=round(checked - started, 1),
            restore_s=round(restored - checked, 1),
            recovery_s=round(recovered - restored, 1),
            total_s=round(time.time() - started, 1),
            rows=counts,
        )
    except (CommandError, subprocess.TimeoutExpired, RuntimeError, OSError) as failed:
        log("drill_failed", error=str(failed))
    finally:
        if postgres is not None:
            stop(postgres)
        try:
            clear_scratch()
        except OSError as failed:
            log("cleanup_failed", error=str(failed))
    now = time.time()
    metrics.add(
        "nmpi_restore_drill_last_run_timestamp_seconds",
        "gauge",
        "When the last restore drill ended (Unix time), successful or not.",
        now,
    )
    metrics.add(
        "nmpi_restore_drill_success",
        "gauge",
        "1 if the last restore drill passed, 0 if it failed.",
        1 if ok else 0,
    )
    metrics.add(
        "nmpi_restore_drill_duration_seconds",
        "gauge",
        "How long the last restore drill took.",
        now - started,
    )
    previous = previous_value("drill", "nmpi_restore_drill_last_success_timestamp_seconds")
    last_success = now if ok else previous
    if last_success is not None:
        metrics.add(
            "nmpi_restore_drill_last_success_timestamp_seconds",
            "gauge",
            "When the last successful restore drill ended (Unix time).",
            last_success,
        )
    for table, count in sorted(counts.items()):
        metrics.add(
            "nmpi_restore_drill_rows",
            "gauge",
            "Rows of a job queue table in the restored cluster.",
            count,
            table=table,
        )
    metrics.write("drill")
    refresh_metrics()
    return 0 if ok else 1


def wait_promoted(postgres: subprocess.Popen[str]) -> None:
    """Until recovery has replayed the archive and the cluster accepts writes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if postgres.poll() is not None:
            error = postgres.stderr.read() if postgres.stderr else ""
            raise RuntimeError(f"the scratch cluster stopped during recovery: {error[-2000:]}")
        argv = [str(PG_BIN / "psql"), "-X", "-At", *scratch_connection()]
        query = [*argv, "-c", "SELECT pg_is_in_recovery()"]
        done = run(query, check=False, timeout=30, quiet=True)
        if done.returncode == 0 and done.stdout.strip() == "f":
            return
        time.sleep(2)
    raise RuntimeError(f"the scratch cluster was still recovering after {START_TIMEOUT_S} s")


def stop(postgres: subprocess.Popen[str]) -> None:
    if postgres.poll() is None:
        # SIGINT is PostgreSQL's fast shutdown (SIGTERM, smart, would wait for sessions).
        postgres.send_signal(signal.SIGINT)
        try:
            postgres.wait(timeout=120)
        except subprocess.TimeoutExpired:
            postgres.kill()
            postgres.wait()


def previous_value(job: str, name: str) -> float | None:
    try:
        for line in (METRICS_DIR / f"pgbackrest_{job}.prom").read_text().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    except (OSError, ValueError):
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nmpi_pgbackrest.py",
        description="The repository host's pgBackRest jobs (its systemd timers run them).",
        epilog="Metrics go to NMPI_PGBACKREST_METRICS_DIR; logs to stderr, as JSON lines.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    take = commands.add_parser(
        "backup", help="take a backup (from the standby when one answers), then write the metrics"
    )
    take.add_argument(
        "--type",
        choices=("full", "diff", "incr"),
        required=True,
        help="full: everything; diff: changes since the last full; incr: since the last backup",
    )
    commands.add_parser(
        "metrics", help="write the repository's metrics (stanza status, newest backups, size)"
    )
    commands.add_parser(
        "drill",
        help="restore the newest backup and all archived WAL into a scratch cluster, "
        "check it with pg_amcheck, count the job tables' rows, remove it, write the metrics",
    )
    args = parser.parse_args(argv)
    if args.command == "backup":
        return backup(args.type)
    if args.command == "metrics":
        return refresh_metrics()
    return drill()


if __name__ == "__main__":
    sys.exit(main())
