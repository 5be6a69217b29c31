"""`nmpi-failover`: the failover daemon and its operator commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from . import __version__
from .config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from .decide import Switchover, SwitchReason
from .journal import Journal
from .logs import configure_logging

if TYPE_CHECKING:
    from .daemon import Adapters

DESCRIPTION = """\
Keeps the platform's public name on the site (Castor or JUSUF) that holds the PostgreSQL
leader and serves healthy. Each round it probes both sites' HTTPS /readyz through their
floating IPs, reads the Patroni cluster state and the public DNS record, and converges:
when the leader's site is down and the other site is healthy, it moves the name there and
then, if that site is in sync, asks Patroni to switch over; when the other site answers but
waits for its database and holds the synchronous standby, it moves the name ahead of
Patroni's own promotion. Once converged, it keeps etcd's raft leader off the database
leader's site (on the witness), so losing that site costs no etcd election, which would
delay Patroni's promotion. Only the instance holding the etcd lease acts.
It never fails back by itself: failback is a command.
"""

EXAMPLES = """\
examples:
  nmpi-failover check-config -c /etc/nmpi-failover/config.yaml
  nmpi-failover watch --dry-run            # log what it would do, change nothing
  nmpi-failover watch                      # the daemon (systemd runs this)
  nmpi-failover status --json              # sites, leader, redundancy, DNS, recent events
  nmpi-failover status --check             # exit 1 when the database lost redundancy
  nmpi-failover switchover --to jusuf      # planned, zero data loss; waits (--wait) for
                                           # jusuf's member to be in sync, else refused
  nmpi-failover failback                   # planned switchover back to preferred_site

exit status: 0 success, 1 failure or refusal, 2 invalid configuration or usage.
The config path defaults to $NMPI_FAILOVER_CONFIG, else /etc/nmpi-failover/config.yaml.
"""

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
# operations.DEFAULT_WAIT, not imported: the CLI imports the operations only when it acts.
DEFAULT_WAIT = 60.0


def _default_config() -> Path:
    return Path(os.environ.get("NMPI_FAILOVER_CONFIG", str(DEFAULT_CONFIG_PATH)))


def _summary(path: Path, config: Config) -> str:
    sites = ", ".join(
        f"{s.name} ({s.address}{', preferred' if s.name == config.preferred_site else ''})"
        for s in config.sites
    )
    if config.dns.rfc2136 is not None:
        dns = f"rfc2136 via {config.dns.rfc2136.server}:{config.dns.rfc2136.port}"
    else:
        assert config.dns.designate is not None
        dns = f"designate (cloud {config.dns.designate.cloud})"
    return "\n".join(
        [
            f"config OK: {path}",
            f"  sites: {sites}",
            f"  public name: {config.dns.record} (ttl {config.dns.ttl} s), {dns}",
            f"  rounds: every {config.interval:g} s, probe timeout {config.probe_timeout:g} s, "
            f"down after {config.failures_to_down} failed probes",
            f"  etcd: {len(config.etcd.endpoints)} endpoint(s), lease {config.etcd.lease_ttl} s "
            f"on {config.etcd.key}",
            f"  patroni REST API: CA {config.patroni.ca_file or 'default bundle'}, "
            f"client certificate {config.patroni.cert_file or 'none'}",
            f"  journal: {config.journal}; metrics on {config.metrics_listen}",
        ]
    )


CHECK_CONFIG_EXAMPLES = """\
examples:
  nmpi-failover check-config -c /etc/nmpi-failover/config.yaml
  # a config rendered elsewhere, before it is installed: its files are on the target host
  nmpi-failover check-config -c rendered.yaml --skip-files --names names.yaml

--names reads a YAML mapping of config keys (dotted, e.g. etcd.lease_ttl, sites) to the
names they were generated from (e.g. Ansible variables): each problem is reported under the
name of its key, and the names of other keys it mentions follow in [brackets].
"""


def cmd_check_config(args: argparse.Namespace) -> int:
    names = _read_names(args.names) if args.names else {}
    if names is None:
        return EXIT_CONFIG
    config = _load(args, check_files=not args.skip_files, names=names)
    if config is None:
        return EXIT_CONFIG
    print(_summary(args.config, config))
    return EXIT_OK


def _read_names(path: Path) -> dict[str, str] | None:
    try:
        names = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        print(f"nmpi-failover check-config: --names {path}: {exc}", file=sys.stderr)
        return None
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        print(
            f"nmpi-failover check-config: --names {path}: not a mapping of key to name",
            file=sys.stderr,
        )
        return None
    return {str(key): value for key, value in names.items()}


def name_problem(problem: str, names: dict[str, str]) -> str:
    """`key: reason` with `key` (or its longest named prefix) replaced by its name, and the
    names of the other named keys the reason mentions appended in brackets."""
    key, sep, reason = problem.partition(": ")
    if not sep or not names:
        return problem
    for prefix in sorted(names, key=len, reverse=True):
        if key == prefix or key.startswith((prefix + ".", prefix + "[")):
            key = f"{names[prefix]}{key[len(prefix) :]} ({key})"
            break
    mentioned = [
        f"{other}: {names[other]}"
        for other in names
        if re.search(rf"(?<![\w.]){re.escape(other)}(?![\w])", reason)
    ]
    return f"{key}: {reason}" + (f" [{'; '.join(mentioned)}]" if mentioned else "")


def _load(
    args: argparse.Namespace, check_files: bool = True, names: dict[str, str] | None = None
) -> Config | None:
    try:
        return load_config(args.config, check_files=check_files)
    except ConfigError as exc:
        print(f"config invalid: {args.config}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {name_problem(problem, names or {})}", file=sys.stderr)
        return None


def _adapters(config: Config, instance: str | None = None) -> Adapters:
    from .daemon import build_adapters  # imported late: only the commands that act need it

    return build_adapters(config, instance=instance)


def cmd_watch(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    from .daemon import serve

    configure_logging(args.log_level.upper())
    try:
        asyncio.run(serve(config, dry_run=args.dry_run, instance=args.instance))
    except OSError as exc:  # metrics port taken, journal not writable, ...
        print(f"nmpi-failover watch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    from .operations import format_status, status

    _, report = asyncio.run(status(config, _adapters(config), args.events))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_status(report))
    # Only on request: scripts that parse --json rely on exit 0 whatever the report says.
    if args.check and report["redundancy"]["ok"] is not True:
        return EXIT_FAILED
    return EXIT_OK


def _open_journal(config: Config) -> Journal | None:
    try:
        return Journal(config.journal)
    except OSError as exc:
        print(f"warning: cannot open the journal ({exc}); steps are not journaled", file=sys.stderr)
        return None


def _confirmer(assume_yes: bool) -> Callable[[Switchover], bool]:
    def confirm(plan: Switchover) -> bool:
        if assume_yes:
            return True
        if not sys.stdin.isatty():
            print("refusing to ask without a terminal: pass --yes", file=sys.stderr)
            return False
        answer = input("proceed? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return confirm


def _seconds(text: str) -> float:
    """--wait's value: seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def _switch(args: argparse.Namespace, target: str | None, reason: SwitchReason) -> int:
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    from .operations import planned_switchover

    journal = _open_journal(config)
    try:
        return asyncio.run(
            planned_switchover(
                config,
                _adapters(config),
                target or config.preferred_site,
                reason=reason,
                journal=journal,
                confirm=_confirmer(args.yes),
                say=lambda text: print(text, flush=True),
                warn=lambda text: print(text, file=sys.stderr),
                wait=args.wait,
            )
        )
    finally:
        if journal is not None:
            journal.close()


def cmd_switchover(args: argparse.Namespace) -> int:
    return _switch(args, args.to, "planned")


def cmd_failback(args: argparse.Namespace) -> int:
    return _switch(args, None, "failback")


WATCH_EXAMPLES = """\
examples:
  nmpi-failover watch --dry-run      # observe and journal what it would do; change nothing
  nmpi-failover watch                # act (only while holding the etcd lease)
  nmpi-failover watch --instance witness-2   # name shown as the lease holder

Logs are JSON lines on stderr; metrics on config's metrics_listen (/metrics).
SIGTERM or Ctrl-C stops it after releasing the lease, so another instance takes over at once.
"""

STATUS_EXAMPLES = """\
examples:
  nmpi-failover status                 # table: sites, probes, leader, replicas, DNS, events
  nmpi-failover status --json | jq .leader
  nmpi-failover status --events 50
  nmpi-failover status --check         # for a monitoring check: exit 1 unless redundant

It reads everything once, exactly as a daemon round would, and never acts or takes the lease.
The redundancy section lists every way the database lost its second copy, each on a line
starting with ALARM: no streaming synchronous standby (no_sync_standby), a replica on another
timeline than the leader (replica_timeline_diverged), a replica behind by more than
max_replica_lag_bytes (replica_lagging; whether its lag keeps rising needs several rounds,
which the daemon's metrics and journal report), a configured member absent from Patroni
(member_missing). Each alarm says what Patroni does about it by itself and what to do if it
does not. The etcd line names etcd's raft leader, its site (or a neutral location: the
witness) and which members answer.

exit status: 0 whatever it sees; with --check, 1 when redundancy is lost or unknown
(Patroni unreadable), 0 when the cluster is redundant. 2: invalid configuration.
"""

SWITCHOVER_EXAMPLES = """\
examples:
  nmpi-failover switchover --to jusuf          # shows the plan, asks before acting
  nmpi-failover switchover --to jusuf --yes    # no question (scripts, runbooks)
  nmpi-failover switchover --to jusuf --wait 0 # refuse at once instead of waiting

Refused (exit 1, with the reason) unless the target site serves healthy and has a member
in sync: in Patroni's synchronous mode its synchronous standby (role sync_standby in
`status`), which Patroni requires; otherwise a streaming replica within
max_replica_lag_bytes. Right after a role change the old primary rejoins as a plain replica
and the leader names it its synchronous standby only at its next loop (loop_wait): while the
target's member is not ready yet, the command waits, re-reading the cluster every second
and printing what it waits for, up to --wait seconds (default 60), then refuses. It also
retries, within the same bound, when Patroni answers that the candidate "does not match
with sync_standby" (its members' views of the DCS differ for a moment). Then Patroni
switches over (no data loss), the command waits for the new leader and points the public
name at the target site. Each step goes to the journal.
"""

FAILBACK_EXAMPLES = """\
examples:
  nmpi-failover failback --yes     # after a failover, once the preferred site is healthy
  nmpi-failover failback --yes --wait 120   # give the old primary longer to rejoin

The daemon never fails back by itself; this is a planned switchover to preferred_site
with the same checks as `switchover`: in synchronous mode it waits, up to --wait seconds
(default 60), for the preferred site's member to become the synchronous standby (the old
primary rejoins as a plain replica first), printing what it waits for, then switches over.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmpi-failover",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        type=Path,
        default=_default_config(),
        metavar="PATH",
        help="YAML config (default: $NMPI_FAILOVER_CONFIG or %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def sub(name: str, help_text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    watch = sub("watch", "run the controller loop (the daemon)", WATCH_EXAMPLES)
    watch.add_argument(
        "--dry-run", action="store_true", help="log and journal decisions, take no action"
    )
    watch.add_argument(
        "--instance",
        metavar="NAME",
        help="this instance's name in the etcd lease (default: the host name)",
    )
    watch.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: %(default)s)",
    )
    watch.set_defaults(func=cmd_watch)

    status = sub("status", "show sites, leader, redundancy, DNS and recent events", STATUS_EXAMPLES)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless the database cluster is redundant (monitoring checks)",
    )
    status.add_argument(
        "--events", type=int, default=10, metavar="N", help="recent journal events to show"
    )
    status.set_defaults(func=cmd_status)

    def wait_option(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--wait",
            type=_seconds,
            default=DEFAULT_WAIT,
            metavar="SECONDS",
            help="how long to wait for the target's member to be ready (in synchronous mode: "
            "the synchronous standby) and to retry Patroni's refusal for it; 0: refuse at "
            "once (default: %(default)g)",
        )

    switchover = sub(
        "switchover",
        "planned switchover to SITE (waits up to --wait for SITE to be in sync, else refused)",
        SWITCHOVER_EXAMPLES,
    )
    switchover.add_argument("--to", required=True, metavar="SITE", help="target site name")
    switchover.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    wait_option(switchover)
    switchover.set_defaults(func=cmd_switchover)

    failback = sub("failback", "planned switchover back to preferred_site", FAILBACK_EXAMPLES)
    failback.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    wait_option(failback)
    failback.set_defaults(func=cmd_failback)

    check = sub(
        "check-config",
        "validate the config; every error names its key (exit 2 when invalid)",
        CHECK_CONFIG_EXAMPLES,
    )
    check.add_argument(
        "--skip-files",
        action="store_true",
        help="do not open the files the config names (CA, TLS, TSIG secret) nor require them to "
        "exist: for a config checked before it is installed on the host that holds them",
    )
    check.add_argument(
        "--names",
        type=Path,
        metavar="FILE",
        help="YAML mapping of config keys to the names to report them under",
    )
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
