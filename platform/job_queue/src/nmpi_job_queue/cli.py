"""`nmpi-job-queue`: run, migrate and administer the job-queue service.

Settings come from NMPI_* environment variables (NMPI_DATABASE_URL at least); see
`nmpi-job-queue check-config`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from . import __version__, admin
from .db import make_engine, make_sessionmaker
from .schemas.service import ServiceState
from .settings import Settings, SettingsError, get_settings
from .units import Platform

# A key file holds one key (at most 200 characters): read no more than this of it.
MAX_KEY_FILE_CHARS = 1024

EXAMPLES = """\
examples:
  export NMPI_DATABASE_URL=postgresql://nmpi:SECRET@db1:5432,db2:5432/nmpi
  nmpi-job-queue migrate                      # once per deploy, before serving
  nmpi-job-queue serve --workers 4            # gunicorn + uvicorn workers on :8000
  nmpi-job-queue user add alice --name "Alice Liddell" --email alice@example.org
  nmpi-job-queue member add alice my-collab --role editor
  nmpi-job-queue token create alice --days 90 # prints the token once
  nmpi-job-queue provider-key create spinnaker-manchester --platform SpiNNaker
  nmpi-job-queue provider-key register spinnaker-lab --platform SpiNNaker < key-file
  nmpi-job-queue maintenance set read-only --message "database upgrade until 14:00"
"""


async def _in_session(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def _admin(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    return asyncio.run(_in_session(settings, work))


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    os.environ["NMPI_BIND"] = args.bind
    os.environ["NMPI_WORKERS"] = str(args.workers)
    if args.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Metrics of every worker, summed at scrape time (prometheus_client multiprocess mode).
        directory = tempfile.mkdtemp(prefix="nmpi-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    gunicorn = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")
    config = os.path.join(os.path.dirname(__file__), "gunicorn_conf.py")
    os.execv(gunicorn, [gunicorn, "--config", config, "nmpi_job_queue.app:create_app()"])


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from . import migrate

    migrate.upgrade(settings, args.revision)
    print(f"database schema at {args.revision}")
    return 0


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    shown = settings.model_dump(mode="json")
    shown["database_url"] = _hide_password(shown["database_url"])
    if shown["oidc_client_secret"]:
        shown["oidc_client_secret"] = "***"
    print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, hosts = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{credentials}{at}{hosts}"


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    _admin(
        settings,
        lambda s: admin.add_user(
            s,
            args.username,
            full_name=args.name,
            email=args.email,
            given_name=args.given_name,
            family_name=args.family_name,
        ),
    )
    print(f"user {args.username} saved")
    return 0


def cmd_collab_add(args: argparse.Namespace, settings: Settings) -> int:
    _admin(
        settings, lambda s: admin.add_collab(s, args.collab, title=args.title, public=args.public)
    )
    print(f"collab {args.collab} saved")
    return 0


def cmd_member_add(args: argparse.Namespace, settings: Settings) -> int:
    _admin(settings, lambda s: admin.add_member(s, args.username, args.collab, args.role))
    print(f"{args.username} is {args.role} of {args.collab}")
    return 0


def cmd_member_remove(args: argparse.Namespace, settings: Settings) -> int:
    _admin(settings, lambda s: admin.remove_member(s, args.username, args.collab))
    print(f"{args.username} removed from {args.collab}")
    return 0


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    token = _admin(
        settings,
        lambda s: admin.create_token(
            s, args.username, description=args.description, days=args.days
        ),
    )
    print(token)
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    count = _admin(settings, lambda s: admin.revoke_tokens(s, args.username))
    print(f"{count} token(s) of {args.username} revoked (cached copies expire within 10 s)")
    return 0


def cmd_provider_key(args: argparse.Namespace, settings: Settings) -> int:
    key = _admin(settings, lambda s: admin.create_provider_key(s, args.provider, args.platform))
    print(key)
    return 0


def cmd_provider_key_register(args: argparse.Namespace, settings: Settings) -> int:
    # The key comes from a file or stdin, never argv (process lists and shell histories show it).
    if args.key_file is not None:
        try:
            with open(args.key_file, encoding="utf-8") as file:
                key = file.read(MAX_KEY_FILE_CHARS).strip()
        except OSError as error:
            print(f"provider-key register: cannot read --key-file: {error}", file=sys.stderr)
            return 2
    else:
        key = sys.stdin.readline(MAX_KEY_FILE_CHARS).strip()
    if not key:
        print(
            "provider-key register: give the key on standard input or in --key-file",
            file=sys.stderr,
        )
        return 2
    done = _admin(
        settings, lambda s: admin.register_provider_key(s, args.provider, args.platform, key)
    )
    print(f"{done}: provider {args.provider} serves {', '.join(sorted(set(args.platform)))}")
    return 0


def cmd_project_create(args: argparse.Namespace, settings: Settings) -> int:
    project_id = _admin(
        settings,
        lambda s: admin.create_project(
            s,
            args.collab,
            args.owner,
            args.title,
            abstract=args.abstract,
            accepted=not args.pending,
        ),
    )
    print(project_id)
    return 0


def cmd_quota_add(args: argparse.Namespace, settings: Settings) -> int:
    quota_id = _admin(
        settings, lambda s: admin.add_quota(s, args.project, args.platform, args.limit, args.units)
    )
    print(quota_id)
    return 0


def cmd_maintenance(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "set":
        _admin(
            settings, lambda s: admin.set_service_status(s, ServiceState(args.state), args.message)
        )
    state, message = _admin(settings, admin.get_service_status)
    print(f"{state}{': ' + message if message else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmpi-job-queue",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="serve the API with gunicorn and uvicorn workers")
    p.add_argument(
        "--bind",
        default=os.environ.get("NMPI_BIND", "0.0.0.0:8000"),
        help="address:port (default: $NMPI_BIND or %(default)s)",
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes (default %(default)s)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="bring the database schema up to date (once per deploy)")
    p.add_argument("--revision", default="head", help="target revision (default %(default)s)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "check-config", help="validate NMPI_* settings and print them (password hidden)"
    )
    p.set_defaults(func=cmd_check_config)

    users = sub.add_parser("user", help="local identity mode: users").add_subparsers(
        dest="action", required=True
    )
    p = users.add_parser("add", help="add or update a user")
    p.add_argument("username")
    p.add_argument("--name", default="", help="full name")
    p.add_argument("--email", default="")
    p.add_argument("--given-name", default="")
    p.add_argument("--family-name", default="")
    p.set_defaults(func=cmd_user_add)

    collabs = sub.add_parser("collab", help="collabs").add_subparsers(dest="action", required=True)
    p = collabs.add_parser("add", help="add or update a collab")
    p.add_argument("collab")
    p.add_argument("--title", default="")
    p.add_argument("--public", action="store_true", help="everyone may view its jobs")
    p.set_defaults(func=cmd_collab_add)

    members = sub.add_parser("member", help="collab memberships").add_subparsers(
        dest="action", required=True
    )
    p = members.add_parser("add", help="give a user a role in a collab")
    p.add_argument("username")
    p.add_argument("collab")
    p.add_argument("--role", choices=["viewer", "editor", "administrator"], default="editor")
    p.set_defaults(func=cmd_member_add)
    p = members.add_parser("remove", help="take a user out of a collab")
    p.add_argument("username")
    p.add_argument("collab")
    p.set_defaults(func=cmd_member_remove)

    tokens = sub.add_parser("token", help="users' API tokens").add_subparsers(
        dest="action", required=True
    )
    p = tokens.add_parser("create", help="create a token and print it (it is shown once)")
    p.add_argument("username")
    p.add_argument(
        "--days", type=float, default=None, help="valid for this many days (default: no expiry)"
    )
    p.add_argument("--description", default="")
    p.set_defaults(func=cmd_token_create)
    p = tokens.add_parser("revoke", help="revoke every token of a user")
    p.add_argument("username")
    p.set_defaults(func=cmd_token_revoke)

    keys = sub.add_parser("provider-key", help="hardware providers' API keys").add_subparsers(
        dest="action", required=True
    )
    p = keys.add_parser("create", help="create a key bound to platforms and print it (shown once)")
    p.add_argument("provider", help="provider name, e.g. spinnaker-manchester")
    p.add_argument(
        "--platform", action="append", required=True, choices=[x.value for x in Platform],
        help="a queue this key may serve (repeat for several)",
    )  # fmt: skip
    p.set_defaults(func=cmd_provider_key)
    p = keys.add_parser(
        "register",
        help="make the key read from stdin the provider's key for the platforms (idempotent: "
        "for deployments that keep the key in their own secrets)",
    )
    p.add_argument("provider", help="provider name, e.g. spinnaker-manchester")
    p.add_argument(
        "--platform", action="append", required=True, choices=[x.value for x in Platform],
        help="a queue this key may serve (repeat for several)",
    )  # fmt: skip
    p.add_argument(
        "--key-file", metavar="PATH",
        help="read the key from this file instead of standard input",
    )  # fmt: skip
    p.set_defaults(func=cmd_provider_key_register)

    projects = sub.add_parser("project", help="resource requests").add_subparsers(
        dest="action", required=True
    )
    p = projects.add_parser(
        "create", help="create a project (accepted unless --pending) and print its id"
    )
    p.add_argument("collab")
    p.add_argument("--owner", required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--abstract", default="")
    p.add_argument("--pending", action="store_true", help="leave it under review")
    p.set_defaults(func=cmd_project_create)

    quotas = sub.add_parser("quota", help="quotas of projects").add_subparsers(
        dest="action", required=True
    )
    p = quotas.add_parser("add", help="add a quota to a project and print its id")
    p.add_argument("project", type=uuid.UUID, help="project id")
    p.add_argument("--platform", required=True, choices=[x.value for x in Platform])
    p.add_argument("--limit", type=float, required=True, help="in the platform's units")
    p.add_argument("--units", default=None, help="checked against the platform's units if given")
    p.set_defaults(func=cmd_quota_add)

    maintenance = sub.add_parser("maintenance", help="the maintenance switch").add_subparsers(
        dest="action", required=True
    )
    maintenance.add_parser("show", help="print the current state").set_defaults(
        func=cmd_maintenance
    )
    p = maintenance.add_parser(
        "set", help="ok, read-only (writes answer 503) or down (all answer 503)"
    )
    p.add_argument("state", choices=[s.value for s in ServiceState])
    p.add_argument("--message", default="", help="shown to clients with the 503")
    p.set_defaults(func=cmd_maintenance)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"nmpi-job-queue: {error}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args, settings) or 0)
    except admin.AdminError as error:
        print(f"nmpi-job-queue: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
