"""The lab's choices that a developer may override from the environment.

The defaults are the lab drivers (lab/plugins). While one of them is being written,
a stock driver can stand in, e.g.:

    NMPI_DEVSTACK_COMPUTE_DRIVER=fake.FakeDriver
    NMPI_DEVSTACK_VOLUME_DRIVER=cinder.tests.fake_driver.FakeLoggingVolumeDriver
    NMPI_DEVSTACK_ML2_MECHANISM_DRIVERS=logger
    NMPI_DEVSTACK_FIP_PLUGIN=          (empty: no floating-IP status plugin)
    NMPI_DEVSTACK_NETAGENT=            (empty: no lab network agent)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .paths import IMAGES_ENV

DEFAULT_COMPUTE_DRIVER = "nmpi_lab.LabDriver"  # nova.virt.nmpi_lab, the shim `up` writes
DEFAULT_VOLUME_DRIVER = "nmpi_lab_openstack.cinder_driver.LoopFileDriver"
DEFAULT_MECHANISM_DRIVERS = "nmpi_lab"  # entry point of nmpi_lab_openstack.neutron_mech
DEFAULT_FIP_PLUGIN = "nmpi_lab_openstack.neutron_fip_status.FloatingIPStatusPlugin"
DEFAULT_NETAGENT = "nmpi-lab-netagent"  # console script in the services venv


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (images/images.env): parsed, never sourced; comments and blanks skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Settings:
    compute_driver: str
    volume_driver: str
    mechanism_drivers: str
    fip_plugin: str
    netagent: str
    vm_image: str  # the Docker image every lab instance runs ("VM")

    @classmethod
    def from_env(cls, images_env: Path = IMAGES_ENV) -> Settings:
        def env(name: str, default: str) -> str:
            return os.environ.get(f"NMPI_DEVSTACK_{name}", default).strip()

        images = read_env_file(images_env) if images_env.exists() else {}
        vm_image = "{}:{}".format(
            images.get("NMPI_IMAGE_VM", "nmpi/vm"), images.get("NMPI_IMAGE_TAG", "latest")
        )
        return cls(
            compute_driver=env("COMPUTE_DRIVER", DEFAULT_COMPUTE_DRIVER),
            volume_driver=env("VOLUME_DRIVER", DEFAULT_VOLUME_DRIVER),
            mechanism_drivers=env("ML2_MECHANISM_DRIVERS", DEFAULT_MECHANISM_DRIVERS),
            fip_plugin=env("FIP_PLUGIN", DEFAULT_FIP_PLUGIN),
            netagent=env("NETAGENT", DEFAULT_NETAGENT),
            vm_image=env("VM_IMAGE", vm_image),
        )

    @property
    def service_plugins(self) -> str:
        return ",".join(p for p in ("router", self.fip_plugin) if p)

    def overridden(self) -> list[str]:
        """The settings that differ from the lab drivers (printed by `up`, so no one forgets)."""
        defaults = {
            "compute_driver": DEFAULT_COMPUTE_DRIVER,
            "volume_driver": DEFAULT_VOLUME_DRIVER,
            "mechanism_drivers": DEFAULT_MECHANISM_DRIVERS,
            "fip_plugin": DEFAULT_FIP_PLUGIN,
            "netagent": DEFAULT_NETAGENT,
        }
        return [
            f"{key}={getattr(self, key)!r}"
            for key, default in defaults.items()
            if getattr(self, key) != default
        ]
