"""Where the lab keeps its state: one directory, .cache/devstack (NMPI_DEVSTACK_HOME overrides).

venv/                 the services' virtualenv (uv sync --only-group devstack)
etc/<group>/...       rendered configuration (group: shared, mariadb, bind, castor, jusuf, ...)
data/...              MariaDB datadir, RabbitMQ mnesia, Glance store, per-region state
logs/<name>.log       one log per process (stdout, stderr and the service's own log_file)
run/<name>.pid        "<pid> <start time>" of each process the lab started
regions               the lab's regions (regions.py): what `up --regions` chose last
secrets.json          generated passwords and keys (0600)
clouds.yaml           lab-<region> for each region, lab-admin (0600)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# lab/src/nmpi_devstack/paths.py -> the repository root is three levels up.
REPO_ROOT = Path(__file__).resolve().parents[3]
LAB_DIR = REPO_ROOT / "lab"
TEMPLATES_DIR = LAB_DIR / "templates"
IMAGES_ENV = REPO_ROOT / "images" / "images.env"
UV = REPO_ROOT / ".cache" / "tools" / "bin" / "uv"


@dataclass(frozen=True)
class Paths:
    home: Path

    @classmethod
    def from_env(cls) -> Paths:
        home = os.environ.get("NMPI_DEVSTACK_HOME")
        return cls(Path(home).resolve() if home else REPO_ROOT / ".cache" / "devstack")

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def site_packages(self) -> Path:
        return self.venv / "lib" / "python3.11" / "site-packages"

    @property
    def etc(self) -> Path:
        return self.home / "etc"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets.json"

    @property
    def regions_file(self) -> Path:
        """The lab's regions, as the last `up` chose them (regions.py)."""
        return self.home / "regions"

    @property
    def clouds_yaml(self) -> Path:
        return self.home / "clouds.yaml"

    @property
    def markers(self) -> Path:
        """One file per completed one-time step (schema syncs, bootstrap): what makes `up` fast."""
        return self.data / "done"

    @property
    def lock(self) -> Path:
        """Held by `up`, `down` and `clean`: one of them at a time (kept by `clean`)."""
        return self.home / ".lock"

    @property
    def mariadb_socket(self) -> Path:
        return self.run / "mariadb.sock"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def conf(self, group: str, *parts: str) -> Path:
        return self.etc.joinpath(group, *parts)

    def region_data(self, region: str, *parts: str) -> Path:
        return self.data.joinpath(region, *parts)

    def make_dirs(self) -> None:
        for d in (self.etc, self.data, self.logs, self.run, self.markers):
            d.mkdir(parents=True, exist_ok=True)
