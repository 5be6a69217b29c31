"""Real PostgreSQL clusters for the tests: initdb, start, stop, streaming replicas, promotion.

Uses the server binaries of the machine's PostgreSQL (Debian's postgresql package, installed by
scripts/setup.sh). When the tests run as root, the server runs as the `postgres` user, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from nmpi_lab.processes import free_port as free_port  # re-exported for the tests

SUPERUSER = "nmpi"


def server_bin_dir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
            "install Debian's postgresql package (scripts/setup.sh does it)"
        )
    return Path(found[-1]).parent


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def cluster_root(prefix: str = "nmpi-pg-") -> Path:
    """A folder for clusters that the server user can reach (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    _chown_to_server_user(path)
    return path


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class PgCluster:
    datadir: Path
    port: int
    name: str = "pg"

    @property
    def bindir(self) -> Path:
        return server_bin_dir()

    def _run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*_as_server_user(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            error = result.stderr.strip()[-2000:]
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {error}")
        return result

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def logfile(self) -> Path:
        return self.datadir.parent / f"{self.name}.log"

    def init(self) -> PgCluster:
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        _chown_to_server_user(self.datadir.parent)
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.datadir),
            "-U", SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "-E", "UTF8",
        )  # fmt: skip
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.datadir.parent}'\n"
                "fsync = off\nsynchronous_commit = on\nfull_page_writes = off\n"
                "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n"
                "max_connections = 200\nshared_buffers = 128MB\n"
            )
        with (self.datadir / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        return self

    def start(self, timeout: float = 30) -> PgCluster:
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
            "-w", "-t", str(int(timeout)), "start",
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-m",
            mode,
            "-w",
            "stop",
            check=False,
        )

    def promote(self, timeout: float = 30) -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-w",
            "-t",
            str(int(timeout)),
            "promote",
        )

    def is_in_recovery(self) -> bool:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return bool(row and row[0])

    def execute(self, sql: str, database: str = "postgres") -> None:
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def replica(self, datadir: Path, port: int, name: str = "replica") -> PgCluster:
        """A streaming replica of this cluster (pg_basebackup -R), started.

        --checkpoint=fast: the default spread checkpoint is paced over checkpoint_timeout and
        took ~100 s here after a migration.
        """
        datadir.parent.mkdir(parents=True, exist_ok=True)
        _chown_to_server_user(datadir.parent)
        self._run(
            str(self.bindir / "pg_basebackup"),
            "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
            "-D", str(datadir), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
        )  # fmt: skip
        with (datadir / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {port}\n")
        return PgCluster(datadir, port, name).start()

    def wait_for_replay(self, replica: PgCluster, timeout: float = 30) -> None:
        """Wait until `replica` has replayed everything this primary has written so far."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert row
            target = row[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(replica.url(), autocommit=True) as conn:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
            if done and done[0]:
                return
            time.sleep(0.1)
        raise TimeoutError(f"replica did not replay up to {target} within {timeout}s")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)
