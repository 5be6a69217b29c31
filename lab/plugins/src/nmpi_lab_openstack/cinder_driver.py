"""The lab's Cinder volume driver: a volume is a sparse file that Nova's lab hypervisor loops.

Backend section of cinder.conf::

    [lab]
    volume_driver = nmpi_lab_openstack.cinder_driver.LoopFileDriver
    volume_backend_name = lab
    nmpi_lab_volumes_dir = /path/to/volumes

Each volume is ``<nmpi_lab_volumes_dir>/volume-<id>.img``, a sparse file of the volume's size.
A connection is ``{"driver_volume_type": "local", "data": {"device_path": <file>}}``: Nova's
lab hypervisor (same host) gives the file to the instance as a loop device (docker_vm.py), so
the instance sees a real block device it can partition, format and mount. The data lives in
the file: it survives detach, attach to another instance and instance deletion.

- delete refuses (VolumeIsBusy: the volume goes back to available) while a loop device still
  holds the file: that means a hypervisor still uses it; nothing is lost by waiting.
- extend grows the file (Nova's driver refreshes a loop device of an in-use volume).
- snapshots and clones are sparse copies (crash-consistent for an in-use volume).
- an image becomes a volume only if it is raw (there is no qemu-img here); a volume
  cannot be uploaded as an image.
- stats: the filesystem of the volumes folder (thin provisioning: sparse files).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from cinder import exception
from cinder.volume import configuration, driver
from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

OPTS = [
    cfg.StrOpt(
        "nmpi_lab_volumes_dir",
        default="$state_path/lab-volumes",
        help="Folder of the lab's volume files (volume-<id>.img).",
    ),
]
CONF.register_opts(OPTS, group=configuration.SHARED_CONF_GROUP)

GiB = 1024**3
BUSY_WAIT = 10.0  # seconds a delete waits for a loop device on its way out (autoclear)


def list_opts() -> list[tuple[str, list[Any]]]:
    return [(configuration.SHARED_CONF_GROUP, OPTS)]


class LoopFileDriver(driver.VolumeDriver):
    """Volumes as sparse files, attached by the lab hypervisor as loop devices."""

    VERSION = "1.0.0"
    CI_WIKI_NAME = "nmpi-lab"
    SUPPORTED = True
    PROTOCOL = "local"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(OPTS)
        self.backend_name = self.configuration.safe_get("volume_backend_name") or "lab"

    # -- paths -------------------------------------------------------------------------------

    @property
    def volumes_dir(self) -> Path:
        return Path(os.path.realpath(self.configuration.nmpi_lab_volumes_dir))

    def local_path(self, volume: Any) -> str:
        return str(self.volumes_dir / f"volume-{volume.id}.img")

    def _snapshot_path(self, snapshot: Any) -> str:
        return str(self.volumes_dir / f"snapshot-{snapshot.id}.img")

    # -- set-up ------------------------------------------------------------------------------

    def do_setup(self, context: Any) -> None:
        self.volumes_dir.mkdir(mode=0o750, parents=True, exist_ok=True)

    def check_for_setup_error(self) -> None:
        folder = self.volumes_dir
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise exception.VolumeBackendAPIException(
                data=f"volumes folder {folder} is missing or not writable"
            )

    # -- volumes -------------------------------------------------------------------------------

    def create_volume(self, volume: Any) -> None:
        path = self.local_path(volume)
        _make_sparse(path, int(volume.size) * GiB)
        LOG.info("volume %s: %s GiB at %s", volume.id, volume.size, path)

    def delete_volume(self, volume: Any) -> None:
        path = self.local_path(volume)
        if not os.path.exists(path):
            LOG.warning("volume %s: %s is already gone", volume.id, path)
            return
        loops = _wait_until_free(path)
        if loops:
            raise exception.VolumeIsBusy(
                message=(
                    f"volume {volume.id} is still held by loop device(s)"
                    f" {', '.join('/dev/' + loop for loop in loops)}: a hypervisor still uses"
                    " it (detach it from its instance)"
                ),
                volume_name=volume.name,
            )
        os.unlink(path)
        LOG.info("volume %s deleted", volume.id)

    def extend_volume(self, volume: Any, new_size: int) -> None:
        path = self.local_path(volume)
        size = int(new_size) * GiB
        if os.path.getsize(path) > size:
            raise exception.InvalidVolume(reason="a volume cannot shrink")
        os.truncate(path, size)
        LOG.info("volume %s extended to %s GiB", volume.id, new_size)

    def create_cloned_volume(self, volume: Any, src_vref: Any) -> None:
        _sparse_copy(self.local_path(src_vref), self.local_path(volume), int(volume.size) * GiB)

    def create_snapshot(self, snapshot: Any) -> None:
        _sparse_copy(
            self.local_path(snapshot.volume),
            self._snapshot_path(snapshot),
            int(snapshot.volume_size) * GiB,
        )

    def delete_snapshot(self, snapshot: Any) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._snapshot_path(snapshot))

    def create_volume_from_snapshot(self, volume: Any, snapshot: Any) -> None:
        _sparse_copy(self._snapshot_path(snapshot), self.local_path(volume), int(volume.size) * GiB)

    def revert_to_snapshot(self, context: Any, volume: Any, snapshot: Any) -> None:
        path = self.local_path(volume)
        if _loops_of(path):
            raise exception.InvalidVolume(reason="detach the volume before reverting it")
        _sparse_copy(self._snapshot_path(snapshot), path, int(volume.size) * GiB)

    def copy_image_to_volume(
        self,
        context: Any,
        volume: Any,
        image_service: Any,
        image_id: str,
        disable_sparse: bool = False,
    ) -> None:
        meta = image_service.show(context, image_id)
        disk_format = meta.get("disk_format")
        if disk_format != "raw":
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason=f"the lab copies raw images only (no qemu-img here), not {disk_format}",
            )
        path = self.local_path(volume)
        size = int(volume.size) * GiB
        folder = str(self.volumes_dir)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".image-") as data:
            image_service.download(context, image_id, data=data)
            data.flush()
            length = os.path.getsize(data.name)
            if length > size:
                raise exception.ImageTooBig(
                    image_id=image_id, reason=f"{length} bytes > volume of {volume.size} GiB"
                )
            _sparse_copy(data.name, path, size)

    def copy_volume_to_image(
        self, context: Any, volume: Any, image_service: Any, image_meta: Any
    ) -> None:
        raise NotImplementedError("the lab's volumes cannot be uploaded as images")

    # -- exports and connections ------------------------------------------------------------------

    def create_export(self, context: Any, volume: Any, connector: Any) -> None:
        return None

    def ensure_export(self, context: Any, volume: Any) -> None:
        return None

    def remove_export(self, context: Any, volume: Any) -> None:
        return None

    def initialize_connection(self, volume: Any, connector: Any, **kwargs: Any) -> dict[str, Any]:
        path = self.local_path(volume)
        if not os.path.isfile(path):
            raise exception.VolumeBackendAPIException(data=f"volume file {path} is missing")
        return {
            "driver_volume_type": self.PROTOCOL,
            "data": {"device_path": path, "volume_id": volume.id, "access_mode": "rw"},
        }

    def terminate_connection(self, volume: Any, connector: Any, **kwargs: Any) -> None:
        return None

    # -- stats ---------------------------------------------------------------------------------

    def _update_volume_stats(self) -> None:
        folder = self.volumes_dir
        usage = shutil.disk_usage(folder if folder.is_dir() else "/")
        provisioned = sum(
            entry.stat().st_size for entry in folder.glob("volume-*.img") if entry.is_file()
        )
        self._stats = {
            "volume_backend_name": self.backend_name,
            "vendor_name": "nmpi-lab",
            "driver_version": self.VERSION,
            "storage_protocol": self.PROTOCOL,
            "total_capacity_gb": round(usage.total / GiB, 2),
            "free_capacity_gb": round(usage.free / GiB, 2),
            "provisioned_capacity_gb": round(provisioned / GiB, 2),
            "reserved_percentage": self.configuration.safe_get("reserved_percentage") or 0,
            "max_over_subscription_ratio": self.configuration.safe_get(
                "max_over_subscription_ratio"
            )
            or 20.0,
            "thin_provisioning_support": True,
            "thick_provisioning_support": False,
            "multiattach": False,
            "QoS_support": False,
            "online_extend_support": True,
            "sparse_copy_volume": True,
        }


def _make_sparse(path: str, size: int) -> None:
    with open(path, "xb") as handle:
        handle.truncate(size)
    os.chmod(path, 0o640)


def _sparse_copy(source: str, target: str, size: int) -> None:
    """Copy source to target keeping holes, then make target exactly `size` bytes (or more)."""
    try:
        subprocess.run(
            ["cp", "--sparse=always", "--reflink=auto", source, target],
            check=True,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    except subprocess.CalledProcessError as exc:
        raise exception.VolumeBackendAPIException(
            data=f"cp {source} {target}: {exc.stderr.strip()}"
        ) from exc
    if os.path.getsize(target) < size:
        os.truncate(target, size)
    os.chmod(target, 0o640)


def _loops_of(path: str) -> list[str]:
    """Loop devices whose backing file is path (from sysfs; Cinder needs no losetup)."""
    wanted = os.path.realpath(path)
    found = []
    for entry in sorted(Path("/sys/block").glob("loop*")):
        try:
            backing = (entry / "loop" / "backing_file").read_text().rstrip("\n")
        except OSError:
            continue
        if backing in (path, wanted):
            found.append(entry.name)
    return found


def _wait_until_free(path: str) -> list[str]:
    """Loop devices still holding path after up to BUSY_WAIT s (one may be auto-clearing)."""
    deadline = time.monotonic() + BUSY_WAIT
    while True:
        loops = _loops_of(path)
        if not loops or time.monotonic() > deadline:
            return loops
        time.sleep(0.5)
