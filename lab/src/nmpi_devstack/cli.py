"""nmpi-devstack: the local OpenStack of nmpi-infra, a region per site (see lab/README.md)."""

from __future__ import annotations

import argparse
import fcntl
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, cast

from . import addresses as a
from . import keystone, regions
from .lab import Lab, status_json
from .paths import Paths
from .settings import Settings
from .supervisor import LabError

EPILOG = """\
examples:
  nmpi-devstack up                 # build or restart the lab (idempotent)
  nmpi-devstack up --regions castor,jusuf,witness   # add the witness (remembered)
  eval "$(nmpi-devstack env)"      # then: openstack --os-cloud lab-castor server list
  nmpi-devstack status             # every process, its pid and health; exit 1 if unhealthy
  nmpi-devstack status --json
  nmpi-devstack down               # stop every process (instances and networks stay)
  nmpi-devstack clean --yes        # down, remove lab containers/networks and the state
  nmpi-devstack cut castor         # chaos: take a whole site off the network
  nmpi-devstack restore castor

state: $NMPI_DEVSTACK_HOME (default .cache/devstack): logs/<process>.log, clouds.yaml, ...
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmpi-devstack",
        description=(
            "A real, small multi-region OpenStack on this machine: Keystone, Placement, Nova,\n"
            "Neutron, Cinder, Glance and Designate from PyPI; MariaDB, RabbitMQ and BIND9 from\n"
            f"Debian. Regions: {', '.join(regions.DEFAULT)} by default, any of"
            f" {', '.join(a.REGIONS)} with\n"
            "`up --regions`. Instances are containers run by the lab hypervisor.\n"
            "See lab/README.md."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up",
        help="start the lab (first time: install, configure, seed; then: restart what is down)",
        description=(
            "Create or refresh the services venv, install MariaDB/RabbitMQ/BIND9 if missing, "
            "render the configuration, start every process in dependency order with readiness "
            "checks, sync schemas and seed data once. Healthy running processes are left alone. "
            "Prints the clouds.yaml to use. The regions are the ones given (--regions, or "
            f"${regions.ENV}), else the ones the last `up` was given (remembered in the state "
            f"directory), else {','.join(regions.DEFAULT)}. A region added is set up and "
            "started; a region dropped is removed with its instances, volumes and databases "
            "(refused while it has instances or volumes, unless --force)."
        ),
    )
    up.add_argument(
        "--regions",
        metavar="R1,R2,...",
        help=f"the lab's regions, among {', '.join(a.REGIONS)} (remembered for later commands;"
        f" default: the remembered ones, else {','.join(regions.DEFAULT)})",
    )
    up.add_argument(
        "--force",
        action="store_true",
        help="remove a region dropped from --regions even if it has instances or volumes",
    )
    up.add_argument("--no-sync", action="store_true", help="skip `uv sync` of the services venv")
    up.add_argument(
        "--reseed",
        action="store_true",
        help="check the seed data again (image, flavors, networks, quotas) even if done before",
    )

    status = sub.add_parser(
        "status",
        help="table of every process: pid, alive, health; exit 1 if anything is unhealthy",
        description="Every lab process: pid, health check, memory (RSS/PSS of its session).",
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")

    down = sub.add_parser(
        "down",
        help="stop every process the lab started (SIGTERM, then SIGKILL after --timeout)",
        description=(
            "Stop the OpenStack services, then MariaDB/RabbitMQ/BIND9. Instance containers and "
            "docker networks are kept: the next `up` finds them again."
        ),
    )
    down.add_argument(
        "--timeout", type=float, default=30.0, help="seconds before SIGKILL (default 30)"
    )

    clean = sub.add_parser(
        "clean",
        help="down, then remove lab containers/networks (label nmpi.lab) and the state (venv kept)",
        description="Destroys every instance, volume, image and database of the lab.",
    )
    clean.add_argument(
        "--yes", action="store_true", help="do not ask (required when stdin is a terminal)"
    )

    sub.add_parser(
        "env",
        help='print `export OS_CLIENT_CONFIG_FILE=...` (use: eval "$(nmpi-devstack env)")',
        description="Shell lines pointing the openstack CLI and openstacksdk at the lab's clouds.",
    )

    for name, text in (
        ("cut", "chaos: cut a region off (its instances and floating IPs stop answering)"),
        ("restore", "chaos: undo `cut` for a region"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("region", choices=sorted(a.REGIONS), help="region name")
    for name, text in (
        ("kill", "chaos: kill an instance abruptly (as a host crash would), its containers too"),
        (
            "freeze",
            "chaos: freeze an instance like a hung VM: every process stops, its containers'"
            " too (docker pause of the VM, the freezer for its inner containers' cgroups)",
        ),
        ("thaw", "chaos: undo `freeze` (exactly the cgroups it froze, then unpause the VM)"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("server", help="server name or uuid")
    return parser


def _status(lab: Lab, as_json: bool) -> int:
    rows = lab.status()
    healthy = all(r["healthy"] for r in rows)
    if as_json:
        print(status_json(rows))
        return 0 if healthy else 1
    width = max(len(r["name"]) for r in rows)
    print(f"{'PROCESS':<{width}}  {'PID':>7}  {'ALIVE':<5}  {'RSS MB':>7}  {'PSS MB':>7}  HEALTH")
    for r in rows:
        pid = str(r["pid"]) if r["pid"] else "-"
        print(
            f"{r['name']:<{width}}  {pid:>7}  {'yes' if r['alive'] else 'no':<5}  "
            f"{r['rss_kb'] / 1024:7.0f}  {r['pss_kb'] / 1024:7.0f}  "
            f"{r['health'] if r['health'] != 'ok' else 'ok (' + r['check'] + ')'}"
        )
    procs = sum(r["processes"] for r in rows)
    rss = sum(r["rss_kb"] for r in rows) / 1024
    pss = sum(r["pss_kb"] for r in rows) / 1024
    verdict = "healthy" if healthy else "UNHEALTHY"
    print(f"\n{procs} processes, RSS {rss:.0f} MB, PSS {pss:.0f} MB: {verdict}")
    if not healthy:
        for r in rows:
            if not r["healthy"]:
                print(f"  {r['name']}: see {r['log']}")
    return 0 if healthy else 1


def _confirm_clean(paths: Paths, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        print("nmpi-devstack clean: pass --yes to confirm", file=sys.stderr)
        return False
    answer = input(
        f"Remove every lab instance, volume and database, and {paths.home} (venv kept)? [y/N] "
    )
    return answer.strip().lower() in ("y", "yes")


class _Chaos(Protocol):
    """The contract of nmpi_devstack/chaos.py (written apart; imported only when used)."""

    def cut_region(self, region: str) -> None: ...
    def restore_region(self, region: str) -> None: ...
    def kill_instance(self, server: str) -> None: ...
    def freeze_instance(self, server: str) -> None: ...
    def thaw_instance(self, server: str) -> None: ...


def _chaos(command: str, target: str) -> None:
    chaos = cast(_Chaos, importlib.import_module("nmpi_devstack.chaos"))
    actions = {
        "cut": chaos.cut_region,
        "restore": chaos.restore_region,
        "kill": chaos.kill_instance,
        "freeze": chaos.freeze_instance,
        "thaw": chaos.thaw_instance,
    }
    actions[command](target)


@contextmanager
def _exclusive(paths: Paths, command: str) -> Iterator[None]:
    """One `up`/`down`/`clean` at a time (tests and people share the lab)."""
    paths.home.mkdir(parents=True, exist_ok=True)
    with paths.lock.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another nmpi-devstack"
            print(f"nmpi-devstack {command}: waiting for {holder} to finish...", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(f"nmpi-devstack {command} (pid {os.getpid()})\n")
        lock.flush()
        yield


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    paths = Paths.from_env()
    try:
        source = ""
        if args.command == "up":
            names, source = regions.chosen(paths, args.regions, os.environ)
        else:
            names = regions.current(paths)
        lab = Lab(paths, Settings.from_env(), region_names=names)
        if args.command in ("up", "down", "clean"):
            if args.command == "clean" and not _confirm_clean(paths, args.yes):
                return 2
            with _exclusive(paths, args.command):
                if args.command == "up":
                    lab.up(
                        sync_venv=not args.no_sync,
                        reseed=args.reseed,
                        force=args.force,
                        regions_source=source,
                    )
                elif args.command == "down":
                    lab.down(timeout=args.timeout)
                else:
                    lab.clean()
        elif args.command == "status":
            return _status(lab, args.json)
        elif args.command == "env":
            print(f"export OS_CLIENT_CONFIG_FILE={paths.clouds_yaml}")
            users = ", ".join(keystone.cloud_names(lab.regions)[:-1])
            print(f"# clouds: {users} (user lab), lab-admin (admin, regions {', '.join(names)})")
        elif args.command in ("cut", "restore"):
            _chaos(args.command, args.region)
        else:
            _chaos(args.command, args.server)
    except LabError as e:
        print(f"nmpi-devstack {args.command}: FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nmpi-devstack {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
