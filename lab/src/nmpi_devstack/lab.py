"""The lab's life cycle: up, status, down, clean (the CLI's verbs, without the argument parsing)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from . import addresses as a
from . import configs, infra, keystone, regions, schemas, seed, services, venv
from .commands import run
from .credentials import Secrets, load_or_create
from .health import API_ERRORS, AdminClients, ServiceKey, ServiceView
from .markers import Markers
from .paths import Paths
from .progress import Progress
from .services import Proc
from .settings import Settings
from .supervisor import LabError, ProcSpec, Supervisor, is_alive, read_pid, session_members

# Which module must exist for each lab driver (a clear error beats a service crash loop).
LAB_DRIVER_MODULES = {
    "compute_driver": (
        "nmpi_lab.LabDriver",
        "nmpi_lab_openstack.nova_driver",
        "COMPUTE_DRIVER",
        "fake.FakeDriver",
    ),
    "volume_driver": (
        "nmpi_lab_openstack.cinder_driver.LoopFileDriver",
        "nmpi_lab_openstack.cinder_driver",
        "VOLUME_DRIVER",
        "cinder.tests.fake_driver.FakeLoggingVolumeDriver",
    ),
    "mechanism_drivers": (
        "nmpi_lab",
        "nmpi_lab_openstack.neutron_mech",
        "ML2_MECHANISM_DRIVERS",
        "logger",
    ),
    "fip_plugin": (
        "nmpi_lab_openstack.neutron_fip_status.FloatingIPStatusPlugin",
        "nmpi_lab_openstack.neutron_fip_status",
        "FIP_PLUGIN",
        "",
    ),
}
NETAGENT_MODULE = "nmpi_lab_openstack.netagent"


def base_env(paths: Paths) -> dict[str, str]:
    """The services' environment: nothing of the caller's OS_* or virtualenv leaks in."""
    env = {
        "PATH": f"{paths.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    for passthrough in (
        "DOCKER_HOST",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS_VERIFY",
        "SSL_CERT_FILE",
        "TZ",
    ):
        if passthrough in os.environ:
            env[passthrough] = os.environ[passthrough]
    return env


@dataclass
class Lab:
    paths: Paths
    settings: Settings
    out: TextIO = sys.stdout
    # the regions of the address plan this lab runs (regions.py), in the plan's order
    region_names: tuple[str, ...] = regions.DEFAULT

    def __post_init__(self) -> None:
        self.progress = Progress(self.out)
        self.supervisor = Supervisor(self.paths, base_env(self.paths))
        self._admin: AdminClients | None = None
        self.regions = regions.specs(self.region_names)
        if not self.regions:
            raise LabError("a lab needs at least one region")

    @property
    def primary(self) -> a.Region:
        """The first region: the shared services (Glance, Designate) are reached through it."""
        return self.regions[0]

    # --- helpers ------------------------------------------------------------------------
    def admin(self, secrets: Secrets) -> AdminClients:
        if self._admin is None:
            self._admin = AdminClients(secrets)
        return self._admin

    def procs(self) -> list[Proc]:
        return services.table(self.paths, self.settings.netagent, self.regions)

    def all_procs(self) -> list[Proc]:
        """The processes of every region of the address plan: what `down` stops (a region
        dropped by an interrupted `up` is stopped too)."""
        return services.table(self.paths, self.settings.netagent, a.REGIONS.values())

    def renderer(self, secrets: Secrets) -> configs.Renderer:
        return configs.Renderer(self.paths, secrets, self.settings, self.regions)

    def secrets(self) -> Secrets:
        return load_or_create(self.paths.secrets)

    def manage(self, log: str, *argv: str | Path, ok_codes: tuple[int, ...] = (0,)) -> str:
        return run(
            argv,
            self.paths.log(log),
            env=base_env(self.paths),
            ok_codes=ok_codes,
            what=" ".join(
                [Path(argv[0]).name]
                + [str(x) for x in argv[1:] if not str(x).startswith("-") and "/" not in str(x)]
            ),
        )

    # --- up -----------------------------------------------------------------------------
    def up(
        self,
        *,
        sync_venv: bool = True,
        reseed: bool = False,
        force: bool = False,
        regions_source: str = "",
    ) -> None:
        """Bring the lab to its regions (self.region_names) and start what is not running.

        A region of the address plan that is not among them but has state (a region dropped
        from the set) is removed; refused while it has instances or volumes, unless `force`.
        """
        p = self.paths
        p.make_dirs()
        client = infra.docker_client()
        dropped = self.dropped_regions(client)
        self.check_dropped(client, dropped, force)
        regions.remember(p, self.region_names)
        how = f" ({regions_source})" if regions_source else ""
        self.progress.line(f"regions: {', '.join(self.region_names)}{how}")
        if reseed:
            (p.markers / "seed").unlink(missing_ok=True)
        for override in self.settings.overridden():
            self.progress.warn(f"not the lab driver: {override}")
        if sync_venv:
            with self.progress.step("services venv (uv sync --only-group devstack)"):
                venv.sync(p)
        else:
            venv.write_nova_shim(p)
        self.check_drivers()
        with self.progress.step("Debian packages") as d:
            installed = infra.install_packages(p)
            d.append(f"installed {' '.join(installed)}" if installed else "present")
        secrets = self.secrets()
        markers = Markers(p, venv.package_versions(p))
        self.prepare_state_dirs()
        with self.progress.step("configuration rendered") as d:
            self.renderer(secrets).render_all()
            d.append(str(p.etc))
        if not infra.mariadb_exists(p):
            # A new lab state (first up, or .cache/devstack removed without `clean`): instance
            # containers of an earlier state have no record any more, and nova-compute refuses
            # to start beside them ("existing instances, but I appear to be a new service").
            # Only the address plan's regions: tests make regions of their own meanwhile.
            removed = [infra.remove_lab_docker_objects(client, name) for name in a.REGIONS]
            containers = sum(c for c, _ in removed)
            networks = sum(n for _, n in removed)
            if containers or networks:
                self.progress.warn(
                    f"new lab state: removed {containers} instance container(s) and"
                    f" {networks} network(s) left by an earlier one"
                )
        with self.progress.step("docker networks") as d:
            d.append(f"{a.SERVICES_DOCKER_NETWORK} {infra.ensure_services_network(client)}")
            for region in self.regions:
                made = infra.ensure_external_network(client, region)
                d.append(f"{region.docker_external_network} {made}")

        if infra.mariadb_prepare(p):
            self.progress.line(f"mariadb: datadir initialised in {p.data / 'mariadb'}")
        infra.rabbitmq_prepare(p)
        infra.bind_prepare(p)
        if self.supervisor.alive("named"):
            infra.bind_rescan(p)  # a docker network made after BIND9 started: listen there too
        self.start_tier("infra")
        with self.progress.step("databases and user"):
            infra.mariadb_setup(p, secrets.mariadb, configs.databases(self.region_names))
        for name in dropped:
            self.remove_region(client, name)

        # the other services' schemas migrate meanwhile: they need the database, not Keystone
        with ThreadPoolExecutor(max_workers=1) as background:
            schemas_done = background.submit(self.schema_syncs, markers, secrets)
            with self.progress.step("keystone: keys, schema, bootstrap"):
                keystone.prepare(p, secrets, markers, self.primary)
            self.start_tier("identity")
            with self.progress.step("keystone: catalog, projects, users") as d:
                ran = markers.once(
                    "keystone-catalog",
                    lambda: keystone.ensure_catalog(
                        keystone.connect(secrets, self.primary.name), secrets, self.regions
                    ),
                    value=keystone.desired_state(secrets, self.regions),
                )
                d.append("updated" if ran else "unchanged")
                keystone.write_clouds_yaml(p, secrets, self.regions)
            schemas_done.result()
        self.start_tier("api")
        daemons = self.start_tier("daemon")
        self.update_pool(markers)
        # daemons left running were seen up before: only the ones just started are waited for
        self.wait_services(secrets, [pr for pr in self.procs() if pr.spec.name in daemons])
        self.discover_hosts()
        with self.progress.step("seed data") as d:
            ran = markers.once(
                "seed", lambda: self.seed(secrets), value=seed.fingerprint(self.regions)
            )
            d.append(
                "created or checked"
                if ran
                else "done before (nmpi-devstack up --reseed checks again)"
            )
        self.start_tier("agent")
        procs = self.procs()
        self.progress.line(
            f"lab up: {len(procs)} processes, regions {', '.join(self.region_names)};"
            f" clouds {', '.join(keystone.cloud_names(self.regions))} in {p.clouds_yaml}"
        )
        print(f"export OS_CLIENT_CONFIG_FILE={p.clouds_yaml}", file=self.out)

    def service_region(self, pr: Proc) -> str:
        """The region whose service list shows a daemon (a shared one: the primary's)."""
        return pr.spec.group if pr.spec.group in self.region_names else self.primary.name

    # --- regions dropped from the set ---------------------------------------------------
    def dropped_regions(self, client: Any) -> list[str]:
        """Regions of the address plan the lab does not run but that left something behind."""
        p = self.paths
        found = []
        for name, region in a.REGIONS.items():
            if name in self.region_names:
                continue
            procs = services.region(p, region, self.settings.netagent, p.clouds_yaml)
            if (
                p.region_data(name).exists()
                or p.conf(name).exists()
                or any(p.pidfile(pr.spec.name).exists() for pr in procs)
                or infra.region_has_docker_objects(client, name)
            ):
                found.append(name)
        return found

    def check_dropped(self, client: Any, dropped: list[str], force: bool) -> None:
        """Refuse to remove regions that have instances or volumes, unless forced."""
        losses: dict[str, str] = {}
        for name in dropped:
            instances = infra.region_instances(client, name)
            volumes = sorted(self.paths.region_data(name, "volumes").glob("volume-*.img"))
            parts = [f"{len(instances)} instance(s) ({', '.join(instances)})"] if instances else []
            parts += [f"{len(volumes)} volume(s)"] if volumes else []
            if parts:
                losses[name] = " and ".join(parts)
        if not losses:
            return
        if force:
            for name, what in losses.items():
                self.progress.warn(f"--force: region {name} is removed with its {what}")
            return
        keep = ",".join(r for r in a.REGIONS if r in self.region_names or r in losses)
        clouds = ", ".join(f"openstack --os-cloud lab-{n} server list" for n in losses)
        raise LabError(
            "; ".join(f"region {n} has {what}" for n, what in losses.items())
            + f": removing {'it' if len(losses) == 1 else 'them'} from the lab (regions"
            f" {', '.join(self.region_names)}) would destroy them. Nothing was changed.\n"
            f"  Delete them first ({clouds}; volume list), or keep"
            f" {'it' if len(losses) == 1 else 'them'}: nmpi-devstack up --regions {keep}\n"
            "  or destroy them with the region: nmpi-devstack up --force --regions"
            f" {','.join(self.region_names)}"
        )

    def remove_region(self, client: Any, name: str) -> None:
        """Everything of a region the lab no longer runs: its processes, host rules, instances
        and networks, volumes' loop devices, databases, state and one-time markers. Its
        catalog entries and cloud go at the Keystone step (ensure_catalog, clouds.yaml)."""
        p = self.paths
        region = a.REGIONS[name]
        with self.progress.step(f"region {name} removed") as d:
            procs = services.region(p, region, self.settings.netagent, p.clouds_yaml)
            running = [pr.spec.name for pr in procs if self.supervisor.alive(pr.spec.name)]
            self.supervisor.stop([pr.spec.name for pr in procs])
            d.append(f"stopped {len(running)} processes")
            agent = p.bin / self.settings.netagent if self.settings.netagent else None
            if agent is not None and agent.exists():
                # the agent's host chains (nat, filter) outlive it: remove them
                self.manage(f"{name}-netagent", agent, "--region", name, "--cleanup")
            containers, networks = infra.remove_lab_docker_objects(client, name)
            d.append(f"removed {containers} containers, {networks} networks")
            d.append(f"detached {detach_loop_devices(p.region_data(name))} loop devices")
            infra.drop_databases(p, configs.region_databases(name))
            for marker in p.markers.glob(f"{name}-*"):
                marker.unlink()
            for directory in (p.conf(name), p.region_data(name)):
                if directory.exists():
                    shutil.rmtree(directory)
            d.append("databases and state dropped")

    def update_pool(self, markers: Markers) -> None:
        """designate-manage pool update (through designate-central: after the daemons start)."""
        p = self.paths
        pools = p.conf("designate", "pools.yaml")
        with self.progress.step("designate: pool default -> BIND9") as d:
            ran = markers.once(
                "designate-pools",
                lambda: self.manage(
                    "designate-manage",
                    *(
                        p.bin / "designate-manage",
                        "--config-file",
                        p.conf("designate", "designate.conf"),
                    ),
                    *("--log-file", p.log("designate-manage"), "pool", "update", "--file", pools),
                ),
                value=hashlib.sha256(pools.read_bytes()).hexdigest(),
            )
            if ran:
                # designate-worker caches a pool once it has used it: start it afresh
                worker = next(pr.spec for pr in self.procs() if pr.spec.name == "designate-worker")
                self.supervisor.stop([worker.name])
                self.supervisor.start(worker)
            d.append("updated" if ran else "unchanged")

    def check_drivers(self) -> None:
        """A default lab driver whose module is missing fails here, with the stand-in to use."""
        missing = []
        for attr, (default, module, env_name, stand_in) in LAB_DRIVER_MODULES.items():
            if getattr(self.settings, attr) == default and not venv.module_exists(
                self.paths, module
            ):
                missing.append(f"  {module} (or set NMPI_DEVSTACK_{env_name}={stand_in})")
        if missing:
            raise LabError(
                "lab drivers not found in the services venv:\n"
                + "\n".join(missing)
                + "\n  (see lab/README.md, 'Stand-in drivers')"
            )

    def prepare_state_dirs(self) -> None:
        p = self.paths
        for d in ("images", "staging", "tasks", "lock", "designate/lock"):
            (p.data / d).mkdir(parents=True, exist_ok=True)
        for r in self.region_names:
            for d in (
                "nova/lock",
                "nova/instances",
                "nova-lab",
                "neutron/lock",
                "cinder/lock",
                "volumes",
                "placement",
            ):
                p.region_data(r, d).mkdir(parents=True, exist_ok=True)
            # Nova's compute node identity: made once, so a restarted nova-compute is the same
            # node (and finds its instances) instead of a new one with a random uuid
            compute_id = p.region_data(r, "nova", "compute_id")
            if not compute_id.exists():
                compute_id.write_text(str(uuid.uuid4()) + "\n")

    def start_tier(self, tier: str) -> list[str]:
        """Start what is not running (or whose configuration changed); wait until all are ready.

        Returns the names of the processes started.
        """
        procs = [pr for pr in self.procs() if pr.tier == tier]
        started: list[ProcSpec] = []
        running: list[str] = []
        changed = [
            pr.spec
            for pr in procs
            if self.supervisor.alive(pr.spec.name) and self.supervisor.config_changed(pr.spec)
        ]
        if changed:
            with self.progress.step("configuration changed, stopped") as d:
                self.supervisor.stop([spec.name for spec in changed])
                d.append(", ".join(spec.name for spec in changed))
        for pr in procs:
            if self.supervisor.alive(pr.spec.name):
                running.append(pr.spec.name)
                continue
            if pr.optional and not self.installed(pr):
                self.progress.warn(f"{pr.spec.name}: {NETAGENT_MODULE} not installed, not started")
                continue
            self.supervisor.start(pr.spec)
            started.append(pr.spec)
        if running:
            self.progress.line(f"{tier}: already running: {', '.join(running)}")

        def ready(spec: ProcSpec, elapsed: float) -> None:
            if spec in started:
                how = f" ({spec.check_desc})" if spec.check_desc else ""
                self.progress.line(f"{spec.name}: ready{how} after {elapsed:.1f} s")

        # running processes are checked too: a hung one must not pass for healthy
        self.supervisor.wait_ready(
            [pr.spec for pr in procs if pr.spec.name in running or pr.spec in started], ready
        )
        return [spec.name for spec in started]

    def installed(self, pr: Proc) -> bool:
        """Whether an optional process (the lab network agent) can run at all."""
        return Path(pr.spec.argv[0]).exists() and venv.module_exists(self.paths, NETAGENT_MODULE)

    def schema_syncs(self, markers: Markers, secrets: Secrets) -> None:
        renderer = self.renderer(secrets)
        runner = schemas.SchemaRunner(self.paths, markers, self.progress, self.manage, renderer)
        runner.run(schemas.plan(self.paths, renderer, self.regions))

    def wait_services(
        self, secrets: Secrets, procs: Iterable[Proc], timeout: float = 240.0
    ) -> None:
        """Until each daemon shows up in its API's service list, reported since its start (or
        dies)."""
        view = ServiceView(self.admin(secrets))
        wanted: dict[ServiceKey, ProcSpec] = {}
        since: dict[ServiceKey, float] = {}
        for pr in procs:
            if pr.service is not None:
                key = (self.service_region(pr), *pr.service)
                wanted[key] = pr.spec
                started = self.supervisor.started_at(pr.spec.name)
                if started is not None:
                    since[key] = started
        begin = time.monotonic()
        while True:
            for spec in wanted.values():
                if not self.supervisor.alive(spec.name):
                    raise self.supervisor.failure(spec, "exited while starting")
            pending = view.pending(wanted, since)
            for key in [k for k in wanted if k not in pending]:
                spec = wanted.pop(key)
                self.progress.line(f"{spec.name}: up in the {key[1]} service list of {key[0]}")
            if not wanted:
                return
            if time.monotonic() - begin > timeout:
                key, reason = next(iter(pending.items()))
                raise self.supervisor.failure(
                    wanted[key], f"not up after {timeout:.0f} s: {reason}"
                )
            time.sleep(1.0)

    def discover_hosts(self) -> None:
        """Map each region's nova-compute into cell1 (once; the scheduler also does it, every
        30 s)."""
        p = self.paths
        for r in self.region_names:
            host = configs.compute_host(r)
            mapped = infra.sql(
                p, f"SELECT host FROM `nova_api_{r}`.host_mappings WHERE host='{host}';"
            )
            if mapped.strip():
                continue
            with self.progress.step(f"{r}: cell1 host discovery"):
                conf = p.conf(r, "nova", "nova.conf")
                log = f"{r}-nova-manage"
                begin = time.monotonic()
                # nova-compute registers its compute node a moment after its service record
                while not infra.sql(
                    p,
                    f"SELECT host FROM `nova_{r}`.compute_nodes WHERE host='{host}' AND deleted=0;",
                ).strip():
                    if time.monotonic() - begin > 120:
                        raise LabError(
                            f"{r}-nova-compute: no compute node after 120 s\n"
                            f"  log: {p.log(f'{r}-nova-compute')}"
                        )
                    time.sleep(1.0)
                self.manage(
                    log,
                    p.bin / "nova-manage",
                    "--config-file",
                    conf,
                    "--log-file",
                    p.log(log),
                    "cell_v2",
                    "discover_hosts",
                    "--verbose",
                )

    def seed(self, secrets: Secrets) -> None:
        try:
            with self.progress.step("seed: image") as d:
                image = seed.ensure_image(self.paths, self.admin(secrets)(self.primary.name))
                d.append(f"{seed.IMAGE_NAME} {image}")
            for region in self.regions:
                with self.progress.step(
                    f"seed {region.name}: flavors, network public, quotas"
                ) as d:
                    conn = self.admin(secrets)(region.name)
                    created = seed.ensure_flavors(conn)
                    d.append(f"flavors {'created ' + ' '.join(created) if created else 'exist'}")
                    d.append(f"public {seed.ensure_external_network(conn, region)}")
                    seed.ensure_quotas(conn)
        except API_ERRORS as e:
            raise LabError(f"seed data: {type(e).__name__}: {e}") from e

    # --- status -------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """A row per process of the lab's regions, and per process still running of a region
        the lab no longer runs (unhealthy: `up` removes it)."""
        rows = []
        view: ServiceView | None = None
        if self.paths.secrets.exists():
            view = ServiceView(self.admin(self.secrets()))
        procs = self.procs()
        for pr in procs:
            spec = pr.spec
            info = read_pid(self.paths, spec.name)
            alive = is_alive(info)
            health: str | None
            if not alive and pr.optional and info is None and not self.installed(pr):
                health = None  # skipped by `up` (not written yet): nothing to be unhealthy
            elif not alive:
                health = "not running" if info is None else "dead (stale pid file)"
            else:
                health = spec.check() if spec.check else None
                if health is None and pr.service is not None and view is not None:
                    health = view.state(self.service_region(pr), *pr.service)
            rows.append(self.status_row(pr, health))
        ours = {pr.spec.name for pr in procs}
        for pr in self.all_procs():
            if pr.spec.name not in ours and self.supervisor.alive(pr.spec.name):
                health = (
                    f"running, but region {pr.spec.group} is not one of the lab's"
                    f" ({', '.join(self.region_names)}): `nmpi-devstack up` removes it"
                )
                rows.append(self.status_row(pr, health))
        return rows

    def status_row(self, pr: Proc, health: str | None) -> dict[str, Any]:
        spec = pr.spec
        info = read_pid(self.paths, spec.name)
        alive = is_alive(info)
        mem = memory(info.pid) if alive and info else {"rss_kb": 0, "pss_kb": 0, "processes": 0}
        return {
            "name": spec.name,
            "group": spec.group,
            "tier": pr.tier,
            "pid": info.pid if alive and info else None,
            "alive": alive,
            "healthy": health is None,
            "health": "ok" if health is None else health,
            "check": spec.check_desc
            or (f"{pr.service[0]} service list" if pr.service else "alive"),
            "log": str(self.paths.log(spec.name)),
            **mem,
        }

    # --- down / clean -------------------------------------------------------------------
    def down(self, timeout: float = 30.0) -> None:
        procs = self.all_procs()
        waves = (
            # the OpenStack services first (they would log connection errors), then the
            # infrastructure, epmd last (rabbitmq-server stops its node through it)
            ("OpenStack services", [pr.spec.name for pr in procs if pr.tier != "infra"]),
            (
                "MariaDB, RabbitMQ, BIND9",
                [pr.spec.name for pr in procs if pr.tier == "infra" and pr.spec.name != "epmd"],
            ),
            ("epmd", ["epmd"]),
        )
        for title, names in waves:
            with self.progress.step(f"stopped {title}") as d:
                killed = self.supervisor.stop(names, timeout=timeout)
                if killed:
                    d.append(f"SIGKILL after {timeout:.0f} s: {', '.join(killed)}")
        self.progress.line("lab down (instance containers and docker networks are kept)")

    def clean(self) -> None:
        self.down()
        with self.progress.step("docker objects labelled nmpi.lab") as d:
            try:
                client = infra.docker_client()
            except LabError as e:
                d.append(f"skipped: {e}")
            else:
                containers, networks = infra.remove_lab_docker_objects(client)
                d.append(f"removed {containers} containers, {networks} networks")
        with self.progress.step("loop devices of lab volumes") as d:
            d.append(f"detached {detach_loop_devices(self.paths.home)}")
        with self.progress.step(f"state removed ({self.paths.home}, venv kept)"):
            if self.paths.home.exists():
                for entry in self.paths.home.iterdir():
                    if entry in (self.paths.venv, self.paths.lock):
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()


def memory(pid: int) -> dict[str, int]:
    """RSS and PSS (kB) of a lab process and everything it forked (its session)."""
    rss = pss = 0
    members = session_members(pid)
    for member in members:
        try:
            text = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "Rss":
                rss += int(value.split()[0])
            elif key == "Pss":
                pss += int(value.split()[0])
    return {"rss_kb": rss, "pss_kb": pss, "processes": len(members)}


def detach_loop_devices(home: Path) -> int:
    """Loop devices backed by files of the state directory (the lab volumes)."""
    try:
        out = subprocess.run(
            ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    count = 0
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].strip().removesuffix(" (deleted)").startswith(
            str(home) + "/"
        ):
            subprocess.run(["losetup", "--detach", parts[0]], check=False, timeout=30)
            count += 1
    return count


def status_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"processes": rows, "healthy": all(r["healthy"] for r in rows)}, indent=2)
