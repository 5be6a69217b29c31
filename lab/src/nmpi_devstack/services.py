"""The lab's process table: every long-running process, how it is started and checked.

Start order (`up`) is by tier; `down` stops the tiers in reverse:
    infra    MariaDB, epmd + RabbitMQ, BIND9
    identity Keystone
    api      Placement, Nova, Neutron, Cinder APIs per region of the lab; Glance, Designate API
    daemon   conductor, scheduler, compute, neutron RPC/periodic, cinder scheduler/volume,
             designate central/worker/producer/mdns
    agent    the lab network agent per region (last: it watches the others through the API)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from . import addresses as a
from .checks import AllOf, Amqp, Dns, Http, MySQL, Tcp
from .paths import Paths
from .supervisor import ProcSpec


class Check(Protocol):
    def __call__(self) -> str | None: ...
    def describe(self) -> str: ...


TIERS = ("infra", "identity", "api", "daemon", "agent")

RABBITMQ_NODENAME = "nmpilab@localhost"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


@dataclass(frozen=True)
class Proc:
    tier: str
    spec: ProcSpec
    # (service type, binary) whose API service list must show it "up": nova-compute etc.
    service: tuple[str, str] | None = None
    optional: bool = False  # a missing program is skipped with a warning (the lab agent)


def rabbitmq_env(paths: Paths) -> dict[str, str]:
    """Environment of rabbitmq-server and rabbitmqctl: a private node, loopback only."""
    return {
        "HOME": str(paths.data / "rabbitmq"),  # the Erlang cookie lives here
        "RABBITMQ_NODENAME": RABBITMQ_NODENAME,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(a.RABBITMQ_PORT),
        "RABBITMQ_DIST_PORT": str(a.RABBITMQ_DIST_PORT),
        "RABBITMQ_CONFIG_FILE": str(paths.conf("rabbitmq", "rabbitmq.conf")),
        "RABBITMQ_CONF_ENV_FILE": str(paths.conf("rabbitmq", "rabbitmq-env.conf")),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(paths.conf("rabbitmq", "enabled_plugins")),
        "RABBITMQ_MNESIA_BASE": str(paths.data / "rabbitmq" / "mnesia"),
        "RABBITMQ_LOG_BASE": str(paths.logs),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_PID_FILE": str(paths.data / "rabbitmq" / "rabbitmq.pid"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_EPMD_PORT": str(a.EPMD_PORT),
    }


def _daemon(paths: Paths, name: str, group: str, program: str, *confs: Path) -> ProcSpec:
    """An oslo.service program: its config files, and its own log file (overrides log_file)."""
    argv = [str(paths.bin / program)]
    for conf in confs:
        argv += ["--config-file", str(conf)]
    argv += ["--log-file", str(paths.log(name))]
    return ProcSpec(name=name, argv=tuple(argv), group=group, config_dir=confs[0].parent)


def _checked(
    name: str, argv: tuple[str, ...], check: Check, config_dir: Path, **kw: Any
) -> ProcSpec:
    return ProcSpec(
        name=name,
        argv=argv,
        group=kw.pop("group", "infra"),
        check=check,
        check_desc=check.describe(),
        config_dir=config_dir,
        **kw,
    )


def _api(paths: Paths, name: str, group: str, etc: Path, host: str, port: int) -> Proc:
    """An API under uWSGI (etc/.../uwsgi.ini), ready when its version document answers."""
    argv = (str(paths.bin / "uwsgi"), "--ini", str(etc / "uwsgi.ini"))
    path = "/v3" if name == "keystone" else "/"
    tier = "identity" if name == "keystone" else "api"
    return Proc(tier, _checked(name, argv, Http(host, port, path), etc, group=group))


def infra(paths: Paths) -> list[Proc]:
    mariadb = ("/usr/sbin/mariadbd", f"--defaults-file={paths.conf('mariadb', 'my.cnf')}")
    epmd = ("/usr/bin/epmd", "-address", "127.0.0.1", "-port", str(a.EPMD_PORT))
    # named -g: foreground, log to stderr (the log file); -n 1: one worker thread
    named = ("/usr/sbin/named", "-g", "-n", "1", "-c", str(paths.conf("bind", "named.conf")))
    # BIND9 must answer on the services network too: what hosts and instances query
    loopback = Dns("127.0.0.1", a.DNS_LOOPBACK_PORT)
    dns = AllOf((loopback, Dns(str(a.DNS_ADDRESS), a.DNS_PORT)))
    return [
        Proc(
            "infra",
            _checked("mariadb", mariadb, MySQL("127.0.0.1", a.MARIADB_PORT), paths.conf("mariadb")),
        ),
        Proc(
            "infra", _checked("epmd", epmd, Tcp("127.0.0.1", a.EPMD_PORT), paths.conf("rabbitmq"))
        ),
        Proc(
            "infra",
            _checked(
                "rabbitmq",
                (RABBITMQ_SERVER,),
                Amqp("127.0.0.1", a.RABBITMQ_PORT),
                paths.conf("rabbitmq"),
                env=rabbitmq_env(paths),
            ),
        ),
        Proc("infra", _checked("named", named, dns, paths.conf("bind"))),
    ]


def shared(paths: Paths) -> list[Proc]:
    host = a.SHARED_API_HOST
    designate = paths.conf("designate")
    procs = [
        _api(paths, "keystone", "shared", paths.conf("keystone"), host, a.PORTS["keystone"]),
        _api(paths, "glance-api", "shared", paths.conf("glance"), host, a.PORTS["glance"]),
        _api(paths, "designate-api", "shared", designate, host, a.PORTS["designate"]),
    ]
    for part in ("central", "worker", "producer", "mdns"):
        name = f"designate-{part}"
        spec = _daemon(paths, name, "shared", name, designate / "designate.conf")
        if part == "mdns":
            mdns = Dns(host, a.PORTS["designate-mdns"])
            spec = replace(spec, check=mdns, check_desc=mdns.describe())
        procs.append(Proc("daemon", spec, service=("dns", part)))
    return procs


def region(paths: Paths, r: a.Region, netagent: str, clouds_yaml: Path) -> list[Proc]:
    n = r.name
    etc = paths.etc / n
    host = r.api_host
    procs = [
        _api(paths, f"{n}-{svc}-api", n, etc / svc, host, a.PORTS[svc])
        for svc in ("placement", "nova", "neutron", "cinder")
    ]
    for binary in ("nova-conductor", "nova-scheduler", "nova-compute"):
        conf = "nova-compute.conf" if binary == "nova-compute" else "nova.conf"
        spec = _daemon(paths, f"{n}-{binary}", n, binary, etc / "nova" / conf)
        procs.append(Proc("daemon", spec, service=("compute", binary)))
    neutron = (etc / "neutron" / "neutron.conf", etc / "neutron" / "ml2_conf.ini")
    for program in ("neutron-rpc-server", "neutron-periodic-workers"):
        procs.append(Proc("daemon", _daemon(paths, f"{n}-{program}", n, program, *neutron)))
    cinder = etc / "cinder" / "cinder.conf"
    for binary in ("cinder-scheduler", "cinder-volume"):
        spec = _daemon(paths, f"{n}-{binary}", n, binary, cinder)
        procs.append(Proc("daemon", spec, service=("block-storage", binary)))
    if netagent:
        argv = (
            str(paths.bin / netagent),
            *("--region", n, "--cloud", "lab-admin"),
            *("--clouds-yaml", str(clouds_yaml), "--interval", "1"),
        )
        spec = ProcSpec(name=f"{n}-netagent", argv=argv, group=n)
        procs.append(Proc("agent", spec, optional=True))
    return procs


def table(paths: Paths, netagent: str, regions: Iterable[a.Region]) -> list[Proc]:
    """Every process of a lab with these regions, in start order."""
    procs = infra(paths) + shared(paths)
    for r in regions:
        procs += region(paths, r, netagent, paths.clouds_yaml)
    return sorted(procs, key=lambda p: TIERS.index(p.tier))
