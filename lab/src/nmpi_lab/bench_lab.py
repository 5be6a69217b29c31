"""Figures of the local OpenStack: cold start, restart, and memory with six instances.

    python -m nmpi_lab.bench_lab [--fresh] [--restarts 3] [--instances 6]

- cold `up`: from a wiped lab state (`nmpi-devstack clean`), so databases, schemas, Keystone,
  seed data and every service start from nothing; with --fresh the services venv is removed
  too, so the PyPI install is counted (a fresh machine's case);
- restart: `down` then `up` of a lab with state (median of --restarts rounds);
- memory: the lab's processes (PSS, so shared pages are not counted twice, and RSS) plus the
  instance containers' memory (cgroup usage without page cache), with N instances ACTIVE,
  half in each region.

Targets (issue 4): cold up <= 10 min on a fresh machine, restart <= 2 min, memory with 6
instances < 6 GiB. The instances are deleted at the end; the lab is left running.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped]
import openstack.config.loader
import openstack.connection
from nmpi_devstack.paths import REPO_ROOT as REPO

HOME = Path(os.environ.get("NMPI_DEVSTACK_HOME", REPO / ".cache" / "devstack"))
GIB = 1024**3


def devstack(*args: str) -> float:
    """Run an nmpi-devstack subcommand; return its wall time in seconds."""
    started = time.monotonic()
    subprocess.run(
        [str(REPO / ".venv" / "bin" / "nmpi-devstack"), *args],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def lab_memory() -> tuple[int, int, int]:
    """(processes, PSS, RSS) of the lab's services, as `nmpi-devstack status --json` sums them
    over each service and the workers it forked (PSS counts shared pages once)."""
    out = subprocess.run(
        [str(REPO / ".venv" / "bin" / "nmpi-devstack"), "status", "--json"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    processes = json.loads(out)["processes"]
    count = sum(int(p.get("processes", 1)) for p in processes)
    pss = sum(int(p.get("pss_kb", 0)) for p in processes) * 1024
    rss = sum(int(p.get("rss_kb", 0)) for p in processes) * 1024
    return count, pss, rss


def container_memory(client: Any) -> tuple[int, int]:
    """(count, bytes) of the lab's instance containers: their memory cgroup's usage minus
    the page cache that can be dropped (what a VM of that size would really need)."""
    total = count = 0
    for container in client.containers.list(filters={"label": "nmpi.lab.instance-uuid"}):
        cgroup = Path("/sys/fs/cgroup/memory/docker") / container.id
        usage = int((cgroup / "memory.usage_in_bytes").read_text())
        stat = dict(
            (line.split()[0], int(line.split()[1]))
            for line in (cgroup / "memory.stat").read_text().splitlines()
        )
        total += usage - stat.get("total_inactive_file", 0)
        count += 1
    return count, total


def boot_instances(clouds: Path, count: int) -> list[tuple[Any, Any]]:
    loader = openstack.config.loader.OpenStackConfig(config_files=[str(clouds)])
    made: list[tuple[Any, Any]] = []
    for index in range(count):
        cloud = "lab-castor" if index % 2 == 0 else "lab-jusuf"
        conn: Any = openstack.connection.Connection(config=loader.get_one(cloud=cloud))
        network = conn.network.find_network("nmpibench-net")
        if network is None:
            network = conn.network.create_network(name="nmpibench-net")
            cidr = "10.81.252.0/24" if cloud == "lab-castor" else "10.82.252.0/24"
            conn.network.create_subnet(network_id=network.id, ip_version=4, cidr=cidr)
        server = conn.compute.create_server(
            name=f"nmpibench-{index}",
            image_id=conn.image.find_image("debian-12").id,
            flavor_id=conn.compute.find_flavor("m1.tiny").id,
            networks=[{"uuid": network.id}],
        )
        made.append((conn, server))
    for conn, server in made:
        conn.compute.wait_for_server(server, wait=600)
    return made


def delete_instances(made: list[tuple[Any, Any]]) -> None:
    for conn, server in made:
        conn.compute.delete_server(server)
    for conn, server in made:
        conn.compute.wait_for_delete(server, wait=300)
    for conn in {id(conn): conn for conn, _ in made}.values():
        network = conn.network.find_network("nmpibench-net")
        if network is not None:
            conn.network.delete_network(network)


def measure_memory(count_wanted: int) -> None:
    made = boot_instances(HOME / "clouds.yaml", count_wanted)
    try:
        time.sleep(20)  # let the instances' systemd and engines settle before measuring
        processes, pss, rss = lab_memory()
        count, instances = container_memory(docker.from_env())
        print(f"lab processes: {processes}, PSS {pss / GIB:.2f} GiB (RSS {rss / GIB:.2f} GiB)")
        print(f"instances: {count}, memory {instances / GIB:.2f} GiB")
        print(
            f"total memory with {count} instances: {(pss + instances) / GIB:.2f} GiB "
            "(PSS + instances; target < 6 GiB)"
        )
    finally:
        delete_instances(made)


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(
        prog="python -m nmpi_lab.bench_lab",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--fresh", action="store_true", help="also remove the services venv")
    parser.add_argument("--restarts", type=int, default=3, help="restart rounds (median)")
    parser.add_argument("--instances", type=int, default=6, help="instances for the memory figure")
    parser.add_argument(
        "--memory-only", action="store_true", help="only the memory figure, on the running lab"
    )
    args = parser.parse_args()

    if args.memory_only:
        devstack("up")
        measure_memory(args.instances)
        return 0
    devstack("clean", "--yes")
    if args.fresh:
        shutil.rmtree(HOME / "venv", ignore_errors=True)
    cold = devstack("up")
    print(f"cold up{' (fresh venv)' if args.fresh else ''}: {cold:.0f} s (target <= 600 s)")

    restarts = []
    for _ in range(args.restarts):
        devstack("down")
        restarts.append(devstack("up"))
    print(
        f"restart (down + up), median of {len(restarts)}: {statistics.median(restarts):.0f} s "
        f"(runs: {', '.join(f'{r:.0f}' for r in restarts)}; target <= 120 s)"
    )

    measure_memory(args.instances)
    return 0


if __name__ == "__main__":
    sys.exit(main())
