"""Database schemas: each service's migrations, once per package version.

The migrations are CPU-bound Python (alembic) and the lab has two cores: on a cold start the
first region's schemas are migrated and the other new, empty regions get copies of them
(mariadb-dump takes a second where nova's migrations take a minute). A region that already
has tables is always migrated in place: it holds data a copy would overwrite; so is a region
added to a lab whose first region has data already.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import addresses as a
from . import infra
from .configs import Renderer
from .markers import Markers
from .paths import Paths
from .progress import Progress

Manage = Callable[..., str]  # Lab.manage(log, *argv, ok_codes=...)

NOVA_CELL_STEPS: tuple[tuple[str, ...], ...] = (
    # map_cell0's --database_connection is appended per region
    ("cell_v2", "map_cell0"),
    # exit code 2: cell1 exists already (an interrupted earlier run)
    ("cell_v2", "create_cell", "--name", "cell1"),
)


@dataclass(frozen=True)
class SchemaSync:
    service: str  # "glance", "nova", ...
    region: str | None  # None: a shared service
    package: str  # the distribution whose version the marker records
    program: str
    confs: tuple[Path, ...]
    steps: tuple[tuple[str, ...], ...]
    databases: tuple[str, ...]
    log_file: bool = True  # the program takes --log-file (neutron-db-manage does not)

    @property
    def name(self) -> str:
        return f"{self.region}-{self.service}" if self.region else self.service

    @property
    def marker(self) -> str:
        return f"{self.name}-db-sync"

    @property
    def log(self) -> str:
        return f"{self.region}-{self.program}" if self.region else self.program


def plan(paths: Paths, renderer: Renderer, regions: Sequence[a.Region]) -> list[SchemaSync]:
    p = paths

    def cell0(region: str) -> str:
        return renderer.db_url(f"nova_cell0_{region}")

    syncs = [
        SchemaSync("glance", None, "glance", "glance-manage",
                   (p.conf("glance", "glance-api.conf"),), (("db_sync",),), ("glance",)),
        SchemaSync("designate", None, "designate", "designate-manage",
                   (p.conf("designate", "designate.conf"),), (("database", "sync"),),
                   ("designate",)),
    ]  # fmt: skip
    for r in (region.name for region in regions):
        syncs += [
            SchemaSync("placement", r, "openstack-placement", "placement-manage",
                       (p.conf(r, "placement", "placement.conf"),), (("db", "sync"),),
                       (f"placement_{r}",)),
            SchemaSync(
                "nova", r, "nova", "nova-manage", (p.conf(r, "nova", "nova.conf"),),
                (
                    ("api_db", "sync"),
                    (*NOVA_CELL_STEPS[0], "--database_connection", cell0(r)),
                    NOVA_CELL_STEPS[1],
                    ("db", "sync"),
                ),
                (f"nova_api_{r}", f"nova_cell0_{r}", f"nova_{r}"),
            ),
            SchemaSync("neutron", r, "neutron", "neutron-db-manage",
                       (p.conf(r, "neutron", "neutron.conf"), p.conf(r, "neutron", "ml2_conf.ini")),
                       (("upgrade", "heads"),), (f"neutron_{r}",), log_file=False),
            SchemaSync("cinder", r, "cinder", "cinder-manage",
                       (p.conf(r, "cinder", "cinder.conf"),), (("db", "sync"),), (f"cinder_{r}",)),
        ]  # fmt: skip
    return syncs


class SchemaRunner:
    def __init__(
        self, paths: Paths, markers: Markers, progress: Progress, manage: Manage, renderer: Renderer
    ) -> None:
        self.paths = paths
        self.markers = markers
        self.progress = progress
        self.manage = manage
        self.renderer = renderer

    def argv(self, sync: SchemaSync, step: tuple[str, ...]) -> list[str | Path]:
        argv: list[str | Path] = [self.paths.bin / sync.program]
        for conf in sync.confs:
            argv += ["--config-file", conf]
        if sync.log_file:
            argv += ["--log-file", self.paths.log(sync.log)]
        return [*argv, *step]

    def migrate(self, sync: SchemaSync) -> None:
        start = time.monotonic()
        for step in sync.steps:
            ok = (0, 2) if "create_cell" in step else (0,)
            self.manage(sync.log, *self.argv(sync, step), ok_codes=ok)
        self.done(sync, f"migrated ({time.monotonic() - start:.1f} s)")

    def copy(self, source: SchemaSync, sync: SchemaSync) -> None:
        start = time.monotonic()
        for src, dst in zip(source.databases, sync.databases, strict=True):
            infra.clone_database(self.paths, src, dst)
        if sync.service == "nova":
            # nova_api holds the cell mappings, which name each region's own databases
            infra.sql(self.paths, f"DELETE FROM `nova_api_{sync.region}`.cell_mappings;")
            for step in sync.steps:
                if step[:2] in (NOVA_CELL_STEPS[0], NOVA_CELL_STEPS[1][:2]):
                    ok = (0, 2) if "create_cell" in step else (0,)
                    self.manage(sync.log, *self.argv(sync, step), ok_codes=ok)
        self.done(sync, f"copied from {source.name} ({time.monotonic() - start:.1f} s)")

    def done(self, sync: SchemaSync, how: str) -> None:
        self.markers.set(sync.marker, self.markers.versions.get(sync.package, "?"))
        self.progress.line(f"schema {sync.name}: {how}")

    def run(self, syncs: list[SchemaSync]) -> None:
        todo = [
            s
            for s in syncs
            if self.markers.get(s.marker) != self.markers.versions.get(s.package, "?")
        ]
        if not todo:
            self.progress.line("schemas: up to date")
            return
        regions = list(dict.fromkeys(s.region for s in syncs if s.region is not None))
        first = regions[0] if regions else None
        empty = {r: infra.databases_empty(self.paths, databases_of(syncs, r)) for r in regions}
        migrate: list[SchemaSync] = []
        copies: list[tuple[SchemaSync, SchemaSync]] = []
        for sync in todo:
            source = next(
                (s for s in todo if s.service == sync.service and s.region == first), None
            )
            if (
                sync.region not in (None, first)
                and first is not None
                and empty[sync.region]
                and empty[first]
                and source
            ):
                copies.append((source, sync))
            else:
                migrate.append(sync)
        # the longest first: nova's migrations take several times the others'
        migrate.sort(key=lambda s: s.service != "nova")
        with ThreadPoolExecutor(max_workers=3) as pool:
            for future in [pool.submit(self.migrate, s) for s in migrate]:
                future.result()
        for source, sync in copies:
            self.copy(source, sync)


def databases_of(syncs: list[SchemaSync], region: str) -> list[str]:
    return [db for s in syncs if s.region == region for db in s.databases]
