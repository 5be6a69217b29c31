"""Run inside a database VM's network namespace (nsenter --net): is PostgreSQL writable now?

    nsenter --target <VM pid> --net -- python -m nmpi_lab.chaos.dbprobe --password-file F

Prints one JSON line per probe: {"t": <unix time>, "writable": true|false|null, "error": ...}.
"writable" means the member would acknowledge a commit now: a primary (not in recovery, not
read-only) that either waits for no synchronous standby or has one streaming. An old primary
that wakes up after its standby was promoted is still "a primary" for a moment, until Patroni
demotes it, but it cannot acknowledge anything (its synchronous standby is gone): that is not
two primaries taking writes, and counting it would blame synchronous replication for the very
case it protects. It asks PostgreSQL itself over the VM's loopback as the superuser (only a
privileged role sees pg_stat_replication's states),
which a cut of the VM's site does not touch, so the answer is the member's own truth even
while nobody outside can reach it. A new connection each time, bounded by connect_timeout: a
frozen server gives no answer (null) instead of a hung probe. Stops when its parent does
(stdout closed) or after --max-seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import psycopg


def probe(password: str, database: str, user: str) -> tuple[bool | None, str | None]:
    try:
        with psycopg.connect(
            host="127.0.0.1",
            dbname=database,
            user=user,
            password=password,
            sslmode="require",
            connect_timeout=1,
            options="-c statement_timeout=1000",
        ) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only'),"
                " current_setting('synchronous_standby_names'),"
                " (SELECT count(*) FROM pg_stat_replication"
                "   WHERE sync_state IN ('sync', 'quorum') AND state = 'streaming')"
            ).fetchone()
    except psycopg.Error as exc:
        return None, str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
    assert row is not None
    in_recovery, read_only, sync_names, sync_streaming = row
    primary = not in_recovery and read_only == "off"
    acknowledges = not sync_names.strip() or sync_streaming > 0
    return primary and acknowledges, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nmpi_lab.chaos.dbprobe", description=__doc__)
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--database", default="postgres")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--max-seconds", type=float, default=3600)
    args = parser.parse_args(argv)
    password = args.password_file.read_text().split()[0]
    end = time.monotonic() + args.max_seconds
    while time.monotonic() < end:
        started = time.time()
        writable, error = probe(password, args.database, args.user)
        line = json.dumps({"t": started, "writable": writable, "error": error})
        try:
            print(line, flush=True)
        except BrokenPipeError:
            return 0
        time.sleep(max(0.0, args.interval - (time.time() - started)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
