"""The lab's infrastructure from Debian: MariaDB, RabbitMQ, BIND9 (started by hand, no systemd),
and the Docker networks of the address plan."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import docker.types  # type: ignore[import-untyped]

from . import addresses as a
from .commands import run
from .configs import DB_USER
from .paths import Paths
from .supervisor import LabError

# program -> Debian package that provides it
PACKAGES = {
    "/usr/sbin/mariadbd": "mariadb-server",
    "/usr/bin/mariadb": "mariadb-client",
    "/usr/lib/rabbitmq/bin/rabbitmq-server": "rabbitmq-server",
    "/usr/sbin/named": "bind9",
    "/usr/sbin/rndc": "bind9-utils",
    "/usr/bin/dig": "bind9-dnsutils",
    # the network agent forgets a moved floating IP's connections so traffic follows at once
    "/usr/sbin/conntrack": "conntrack",
    # the lab's instances are reached over SSH by the tests and by Ansible
    "/usr/bin/ssh": "openssh-client",
}
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
LAB_LABEL = "nmpi.lab"
REGION_LABEL = "nmpi.lab.region"
# the lab hypervisor's labels of an instance's container (nmpi_lab_openstack.docker_vm)
INSTANCE_LABEL = "nmpi.lab.instance-uuid"
INSTANCE_NAME_LABEL = "nmpi.lab.instance-name"


def install_packages(paths: Paths) -> list[str]:
    """apt-get install what is missing, never letting a package start its system instance."""
    missing = sorted({pkg for prog, pkg in PACKAGES.items() if not Path(prog).exists()})
    if not missing:
        return []
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = paths.log("apt")
    # policy-rc.d exiting 101 forbids invoke-rc.d to start services (the system's MariaDB,
    # RabbitMQ and BIND9 would take ports and run as other users)
    made_policy = not POLICY_RC_D.exists()
    if made_policy:
        POLICY_RC_D.write_text(
            "#!/bin/sh\n# nmpi-devstack: no service starts while installing\nexit 101\n"
        )
        POLICY_RC_D.chmod(0o755)
    try:
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "-q"]
        try:
            run([*apt, "install", "--no-install-recommends", *missing], log, env=env)
        except LabError:
            run([*apt, "update"], log, env=env)
            run(
                [*apt, "install", "--no-install-recommends", *missing],
                log,
                env=env,
                what="apt-get install",
            )
    finally:
        if made_policy:
            POLICY_RC_D.unlink(missing_ok=True)
    return missing


# --- MariaDB --------------------------------------------------------------------------
def mariadb_exists(paths: Paths) -> bool:
    """Whether the lab's database has been made (by an earlier up)."""
    return (paths.data / "mariadb" / "mysql").is_dir()


def mariadb_prepare(paths: Paths) -> bool:
    """Create the datadir on the first up; True if it was created."""
    datadir = paths.data / "mariadb"
    if mariadb_exists(paths):
        return False
    if datadir.exists():  # a half-made datadir from an interrupted first up
        shutil.rmtree(datadir)
    datadir.mkdir(parents=True)
    run(
        [
            "/usr/bin/mariadb-install-db",
            f"--defaults-file={paths.conf('mariadb', 'my.cnf')}",
            f"--datadir={datadir}",
            "--user=root",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        paths.log("mariadb-install"),
        what="mariadb-install-db",
    )
    return True


def sql(paths: Paths, statements: str, *, log: str = "mariadb-setup") -> str:
    """Run SQL as MariaDB's root over the lab's socket (root authenticates by unix socket)."""
    return run(
        [
            "/usr/bin/mariadb",
            "--no-defaults",
            f"--socket={paths.mariadb_socket}",
            "-uroot",
            "-N",
            "-B",
        ],
        paths.log(log),
        input_text=statements,
        what="mariadb",
    )


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def mariadb_setup(paths: Paths, password: str, databases: list[str]) -> None:
    """Databases and the services' user (idempotent; resets the password to the stored one)."""
    pw = _sql_string(password)
    stmts = []
    for host in ("127.0.0.1", "localhost"):
        stmts.append(f"CREATE USER IF NOT EXISTS '{DB_USER}'@'{host}' IDENTIFIED BY {pw};")
        stmts.append(f"ALTER USER '{DB_USER}'@'{host}' IDENTIFIED BY {pw};")
    for db in databases:
        stmts.append(f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4;")
        for host in ("127.0.0.1", "localhost"):
            stmts.append(f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{DB_USER}'@'{host}';")
    stmts.append("FLUSH PRIVILEGES;")
    sql(paths, "\n".join(stmts) + "\n")


def drop_databases(paths: Paths, names: list[str]) -> None:
    sql(paths, "".join(f"DROP DATABASE IF EXISTS `{n}`;\n" for n in names))


def databases_empty(paths: Paths, names: list[str]) -> bool:
    """Whether none of these databases has a table yet (a region never started)."""
    quoted = ", ".join(_sql_string(n) for n in names)
    count = sql(
        paths, f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema IN ({quoted});"
    )
    return count.strip() == "0"


def clone_database(paths: Paths, source: str, target: str) -> None:
    """Copy a database's tables and rows into another (empty) one: dump, then load."""
    socket = f"--socket={paths.mariadb_socket}"
    log = paths.log("mariadb-setup")
    dump = run(
        ["/usr/bin/mariadb-dump", "--no-defaults", socket, "-uroot", "--single-transaction",
         "--skip-comments", source],
        log,
        what=f"mariadb-dump {source}",
    )  # fmt: skip
    run(
        ["/usr/bin/mariadb", "--no-defaults", socket, "-uroot", target],
        log,
        input_text=dump,
        what=f"load {source} into {target}",
    )


# --- RabbitMQ / BIND9 -------------------------------------------------------------------
def rabbitmq_prepare(paths: Paths) -> None:
    home = paths.data / "rabbitmq"
    (home / "mnesia").mkdir(parents=True, exist_ok=True)
    cookie = home / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text(os.urandom(20).hex().upper())
    cookie.chmod(0o400)


def bind_prepare(paths: Paths) -> None:
    (paths.data / "bind").mkdir(parents=True, exist_ok=True)


def bind_rescan(paths: Paths) -> None:
    """Make a running BIND9 look for new interface addresses (198.18.0.1 on a new bridge)."""
    run(
        ["/usr/sbin/rndc", "-c", paths.conf("bind", "rndc.conf"), "scan"],
        paths.log("named"),
        what="rndc scan",
        timeout=30,
    )


# --- Docker networks ---------------------------------------------------------------------
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as e:
        raise LabError(f"docker: the engine does not answer ({e}); start dockerd first") from e
    return client


def ensure_network(
    client: docker.DockerClient,
    name: str,
    subnet: str,
    gateway: str,
    labels: dict[str, str],
) -> str:
    """Create a bridge network with the given subnet, or check the existing one matches."""
    for net in client.networks.list(names=[name]):
        if net.name != name:
            continue
        configs = (net.attrs.get("IPAM") or {}).get("Config") or []
        if any(c.get("Subnet") == subnet for c in configs):
            return "exists"
        raise LabError(
            f"docker network {name} exists with another subnet ({configs}); "
            f"remove it (docker network rm {name}) or run `nmpi-devstack clean`"
        )
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=subnet, gateway=gateway)]
    )
    try:
        client.networks.create(
            name, driver="bridge", ipam=ipam, labels=labels, check_duplicate=True
        )
    except docker.errors.APIError as e:
        raise LabError(f"docker network {name} ({subnet}): {e.explanation or e}") from e
    return "created"


def ensure_services_network(client: docker.DockerClient) -> str:
    return ensure_network(
        client,
        a.SERVICES_DOCKER_NETWORK,
        str(a.SERVICES_NETWORK),
        str(a.SERVICES_GATEWAY),
        {LAB_LABEL: "1"},
    )


def ensure_external_network(client: docker.DockerClient, region: a.Region) -> str:
    return ensure_network(
        client,
        region.docker_external_network,
        str(region.external_cidr),
        str(region.external_gateway),
        {LAB_LABEL: "1", REGION_LABEL: region.name},
    )


def region_instances(client: docker.DockerClient, region: str) -> list[str]:
    """Names of a region's instances: its hypervisor's containers (they outlive `down`)."""
    containers = client.containers.list(
        all=True, filters={"label": [f"{REGION_LABEL}={region}", INSTANCE_LABEL]}
    )
    return sorted(str((c.labels or {}).get(INSTANCE_NAME_LABEL) or c.name) for c in containers)


def region_has_docker_objects(client: docker.DockerClient, region: str) -> bool:
    label = {"label": f"{REGION_LABEL}={region}"}
    return bool(
        client.containers.list(all=True, filters=label) or client.networks.list(filters=label)
    )


def remove_lab_docker_objects(
    client: docker.DockerClient, region: str | None = None
) -> tuple[int, int]:
    """Remove every container and network labelled nmpi.lab (what `clean` promises), or only
    those of one region (what removing a region from the lab promises)."""
    label = LAB_LABEL if region is None else f"{REGION_LABEL}={region}"
    containers = client.containers.list(all=True, filters={"label": label})
    for c in containers:
        c.remove(force=True, v=True)
    networks = client.networks.list(filters={"label": label})
    for n in networks:
        n.reload()
        for attached in n.attrs.get("Containers") or {}:
            with contextlib.suppress(docker.errors.APIError):
                n.disconnect(attached, force=True)
        n.remove()
    return len(containers), len(networks)
