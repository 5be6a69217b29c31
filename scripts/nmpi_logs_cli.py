#!/usr/bin/env python3
"""nmpi-logs: query the central logs of every host of both sites and the witness.

scripts/nmpi-logs is this file (a link): run it by that name. See --help.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
    # Started with another Python: the repository's venv has ansible (as new-vault-secrets).
    os.execv(VENV_PYTHON, [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
sys.path.insert(0, str(REPO))

# The log server's query: its checks and its line format.
from monitoring.logs import nmpi_logs  # noqa: E402

PROG = "nmpi-logs"
EPILOG = """\
Every host ships its journal (the containers' logs with it) to the log server at the witness
over TLS (roles journal_upload, journal_remote); this command runs the query there, through
Ansible and the inventory's SSH settings, and prints the matching lines oldest first:
  TIME HOST SERVICE LEVEL [REQUEST ID] MESSAGE

Services are the containers' names without nmpi- and the replica number (job-queue, nginx,
patroni, etcd, dns-server, prometheus, ...), nmpi-failover's unit (failover), or a program's
syslog name (sshd, dockerd). A level selects it and the levels above
(debug < info < warning < error < critical): the JSON `level` of the services that log JSON,
an HTTP status for access logs (5xx error, 4xx warning), else journald's priority.

Examples:
  scripts/nmpi-logs --since 10m --service job-queue --level error
  scripts/nmpi-logs --since 1h --request-id 3f2a9c1e-...     # one request, nginx and the API
  scripts/nmpi-logs --since "2026-12-06 15:40" --until "2026-12-06 15:45" --host castor-db-1
  make logs SINCE=10m SERVICE=job-queue LEVEL=error           # the same, from make

Browse them: ssh -L 19531:127.0.0.1:19531 <witness>, then http://127.0.0.1:19531/browse."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Query the central logs of every host at the log server (the witness).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-i",
        "--inventory",
        default="inventories/lab",
        help="the inventory (default: inventories/lab, relative to the repository)",
    )
    parser.add_argument(
        "--since", default="10m", help="a duration ago (30s, 10m, 2h, 1d) or a UTC time"
    )
    parser.add_argument("--until", default="", help="the same forms; default now")
    parser.add_argument("--host", action="append", default=[], help="a host (repeatable)")
    parser.add_argument("--service", action="append", default=[], help="a service (repeatable)")
    parser.add_argument(
        "--level", default="", choices=("", *nmpi_logs.LEVELS), help="this level and above"
    )
    parser.add_argument("--request-id", default="", help="the lines of one request")
    parser.add_argument("--grep", default="", help="a regular expression the message must match")
    parser.add_argument(
        "--limit",
        type=int,
        default=1000,
        help=f"at most this many lines (<= {nmpi_logs.MAX_LIMIT})",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser.parse_args(argv)


def query_args(args: argparse.Namespace) -> list[str]:
    """nmpi_logs.py's arguments, checked here first (the same checks as on the server)."""
    forwarded = ["--since", args.since, "--limit", str(args.limit)]
    for option in ("until", "level", "request_id", "grep"):
        value = getattr(args, option)
        if value:
            forwarded += [f"--{option.replace('_', '-')}", value]
    for host in args.host:
        forwarded += ["--host", host]
    for service in args.service:
        forwarded += ["--service", service]
    nmpi_logs.journalctl_argv(nmpi_logs.parse_args(forwarded))  # raises QueryError
    return forwarded


def tool_env(inventory: Path) -> dict[str, str]:
    """The repository's tools first on PATH (ansible-playbook beside this interpreter: the
    venv's) and its ansible.cfg; for the lab, the local OpenStack's clouds.yaml by default."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    lab_clouds = REPO / ".cache" / "devstack" / "clouds.yaml"
    if inventory.resolve() == (REPO / "inventories" / "lab").resolve() and lab_clouds.exists():
        env.setdefault("OS_CLIENT_CONFIG_FILE", str(lab_clouds))
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        forwarded = query_args(args)
    except nmpi_logs.QueryError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    inventory = Path(args.inventory)
    if not inventory.is_absolute():
        inventory = REPO / inventory
    if not inventory.exists():
        print(f"{PROG}: no inventory at {inventory}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nmpi-logs-") as tmp:
        output = Path(tmp) / "lines.jsonl"
        extra = Path(tmp) / "query.json"
        extra.write_text(json.dumps({"nmpi_logs_args": forwarded, "nmpi_logs_output": str(output)}))
        env = tool_env(inventory)
        result = subprocess.run(
            [
                "ansible-playbook",
                "playbooks/logs.yml",
                "-i",
                str(inventory),
                "--tags",
                "logs",
                "-e",
                f"@{extra}",
            ],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0 or not output.exists():
            print(
                f"{PROG}: the query failed (ansible-playbook exit {result.returncode}):",
                file=sys.stderr,
            )
            print((result.stdout + result.stderr)[-3000:], file=sys.stderr)
            return 1
        lines = [json.loads(raw) for raw in output.read_text().splitlines() if raw.strip()]
    for line in lines:
        print(json.dumps(line, ensure_ascii=False) if args.json else nmpi_logs.format_line(line))
    if not args.json:
        print(
            f"({len(lines)} lines{', the limit' if len(lines) >= args.limit else ''})",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
