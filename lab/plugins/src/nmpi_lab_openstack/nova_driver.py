"""The lab hypervisor: a Nova compute driver whose instances are VM-like Docker containers.

Loaded as ``compute_driver = nmpi_lab.LabDriver`` (Nova imports drivers from nova.virt only:
the lab writes nova/virt/nmpi_lab.py, which re-exports LabDriver from here). docker_vm.py says
how an instance maps to Docker and cloud_config.py what runs at its first boot.

Options, group ``[nmpi_lab]``:

``region`` (string, required)
    The lab region this nova-compute serves; names and labels every container and network
    (``nmpilab-<region>-...``), so two regions share one Docker engine without seeing each
    other's instances.
``docker_image`` (string, default ``nmpi/vm:0.1.0``)
    The image of every instance (Glance images carry no disk here). A Glance image property
    ``nmpi_lab_docker_image`` chooses another one for the servers booted from that image.
``state_dir`` (string, default ``$state_path/nmpi_lab``)
    The driver's own files: ``consoles/<uuid>.log``, the console log of each deleted instance
    (the last 100 are kept) to read after a failed test. Nothing in it is needed to run.
``default_user`` (string, default ``debian``)
    The cloud image's default user: it gets the key pair, sudo without password and bash.
``boot_timeout`` (integer, default 120)
    Seconds spawn waits for the instance's first-boot stage that installs users and keys
    (it runs before sshd starts). On timeout the server still goes ACTIVE (its console tells).
``vcpus``, ``memory_mb``, ``disk_gb`` (integers, default 0: the host's own figures)
    The capacity reported to Placement (Nova's allocation ratios apply on top).
``enforce_flavor_limits`` (boolean, default false)
    Give each container the flavor's memory and vCPUs as Docker limits. Off by default: a
    small flavor would starve systemd plus an inner Docker engine.

Behaviour Nova relies on:

- spawn makes the networks and the container, writes the first-boot files, gives it the
  block_device_info volumes, starts it and waits for the init stage. It does not wait for
  network-vif-plugged events: nothing in the lab sends them, and no compute manager path
  for boot/stop/start/reboot waits for them on this driver's behalf.
- power_off is systemd's clean shutdown (``docker stop`` with Nova's timeout; 0 kills),
  power_on starts the container after giving it its volumes again (loop devices are
  re-made if the host restarted), reboot is stop/kill + power_on. An in-guest ``reboot``
  (systemd exits 129) is followed by a start of the container (a Docker event watcher);
  an in-guest poweroff leaves it stopped, and Nova learns both through lifecycle events.
- pause/unpause and suspend/resume freeze and thaw the container (no memory is saved).
- attach/detach_volume: see docker_vm (loop device + node inside). A detach while the
  volume is mounted inside is refused (DeviceDetachFailed: the volume stays in-use). The
  root device is /dev/vda (default_root_device_name), so Nova names volumes /dev/vdb,
  /dev/vdc... as on a KVM cloud; the node inside has the name Nova chose.
- nova-compute restarts lose nothing: instances are found by their container labels, the
  node uuid is Nova's persistent one (``compute_id`` in state_path).

Not supported (Nova reports it): boot from volume, snapshot (image upload), resize and
migrations, rescue, interface attach/detach, volume swap, volume encryption, multiattach.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import nova.conf
from nova import exception
from nova.compute import power_state
from nova.network import neutron
from nova.objects import fields as obj_fields
from nova.virt import driver, hardware
from nova.virt import event as virtevent
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import versionutils

from nmpi_lab_openstack import cloud_config, docker_vm

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF

GROUP = "nmpi_lab"
OPTS = [
    cfg.StrOpt("region", required=True, help="The lab region this nova-compute serves."),
    cfg.StrOpt("docker_image", default="nmpi/vm:0.1.0", help="Image of every instance."),
    cfg.StrOpt(
        "state_dir",
        default="$state_path/nmpi_lab",
        help="The driver's own files (consoles of deleted instances).",
    ),
    cfg.StrOpt("default_user", default="debian", help="The default user of the instances."),
    cfg.IntOpt("boot_timeout", default=120, min=0, help="Seconds spawn waits for users and keys."),
    cfg.IntOpt("vcpus", default=0, min=0, help="vCPUs reported (0: the host's)."),
    cfg.IntOpt("memory_mb", default=0, min=0, help="Memory reported, MiB (0: the host's)."),
    cfg.IntOpt("disk_gb", default=0, min=0, help="Disk reported, GiB (0: the host's)."),
    cfg.BoolOpt(
        "enforce_flavor_limits",
        default=False,
        help="Apply the flavor's memory and vCPUs as container limits.",
    ),
]
CONF.register_opts(OPTS, group=GROUP)

IMAGE_PROPERTY = "nmpi_lab_docker_image"
ROOT_DEVICE = "/dev/vda"  # never a node inside: the container's root is its own filesystem
# Placement resource classes (os_resource_classes' values).
VCPU, MEMORY_MB, DISK_GB = "VCPU", "MEMORY_MB", "DISK_GB"
VOLUME_TYPES = ("local", "file")
CONSOLES_KEPT = 100

_POWER_STATES = {
    docker_vm.PowerState.RUNNING: power_state.RUNNING,
    docker_vm.PowerState.PAUSED: power_state.PAUSED,
    docker_vm.PowerState.SHUTDOWN: power_state.SHUTDOWN,
    docker_vm.PowerState.CRASHED: power_state.CRASHED,
    docker_vm.PowerState.NOSTATE: power_state.NOSTATE,
}
_LIFECYCLE = {
    "start": virtevent.EVENT_LIFECYCLE_STARTED,
    "die": virtevent.EVENT_LIFECYCLE_STOPPED,
    "pause": virtevent.EVENT_LIFECYCLE_PAUSED,
    "unpause": virtevent.EVENT_LIFECYCLE_RESUMED,
}


def list_opts() -> list[tuple[str, list[Any]]]:
    """For oslo-config-generator."""
    return [(GROUP, OPTS)]


class LabDriver(driver.ComputeDriver):
    """Instances are containers of the project's vm image on this host's Docker engine."""

    capabilities: ClassVar[dict[str, bool]] = {
        **driver.ComputeDriver.capabilities,
        "has_imagecache": False,
        "supports_evacuate": False,
        "supports_migrate_to_same_host": False,
        "supports_attach_interface": False,
        "supports_device_tagging": False,
        "supports_tagged_attach_interface": False,
        "supports_tagged_attach_volume": False,
        "supports_extend_volume": True,
        "supports_multiattach": False,
        "supports_trusted_certs": False,
        "supports_pcpus": False,
        "supports_accelerators": False,
        # The Glance image is not used (the Docker image is), whatever its format.
        "supports_image_type_raw": True,
        "supports_image_type_qcow2": True,
    }

    def __init__(self, virtapi: Any, read_only: bool = False) -> None:
        super().__init__(virtapi)
        self._hv: docker_vm.DockerHypervisor | None = None
        self._host: str | None = None
        self._stop_events = threading.Event()
        self._events_thread: threading.Thread | None = None

    # -- set-up ----------------------------------------------------------------------------------

    @property
    def hv(self) -> docker_vm.DockerHypervisor:
        if self._hv is None:
            region = CONF.nmpi_lab.region
            if not region:
                raise exception.InvalidConfiguration(
                    reason="[nmpi_lab] region is required by the lab hypervisor"
                )
            self._hv = docker_vm.DockerHypervisor(region)
        return self._hv

    def init_host(self, host: str) -> None:
        self._host = host
        if not CONF.nmpi_lab.region:
            raise exception.InvalidConfiguration(
                reason="[nmpi_lab] region is required by the lab hypervisor"
            )
        try:
            self.hv.ping()
        except docker_vm.LabError as exc:
            raise exception.HypervisorUnavailable() from exc
        image = CONF.nmpi_lab.docker_image
        if not self.hv.image_present(image):
            LOG.warning("Docker image %s is missing: servers will fail to build", image)
        Path(CONF.nmpi_lab.state_dir, "consoles").mkdir(parents=True, exist_ok=True)
        if self._events_thread is None:
            self._stop_events.clear()
            self._events_thread = threading.Thread(
                target=self._watch_events, name="nmpi-lab-docker-events", daemon=True
            )
            self._events_thread.start()
        LOG.info(
            "lab hypervisor for region %s: %d instance(s) on this host, image %s",
            self.hv.region,
            len(self.hv.list_instances()),
            image,
        )

    def cleanup_host(self, host: str) -> None:
        self._stop_events.set()

    def _watch_events(self) -> None:
        """Docker lifecycle events -> Nova lifecycle events; restart after an in-guest reboot."""
        while not self._stop_events.is_set():
            try:
                for event in self.hv.events(self._stop_events):
                    if self.hv.restart_after_guest_reboot(event):
                        continue
                    transition = _LIFECYCLE.get(event.action)
                    if transition is not None:
                        self.emit_event(virtevent.LifecycleEvent(event.instance_uuid, transition))
            except Exception:
                LOG.exception("Docker event watcher failed; restarting it")
                self._stop_events.wait(5)

    # -- inventory ---------------------------------------------------------------------------

    def get_available_nodes(self, refresh: bool = False) -> list[str]:
        return [self._host or CONF.host]

    def _capacity(self) -> tuple[int, int, int, int]:
        """(vcpus, memory MiB, disk GiB, free disk GiB)."""
        vcpus = CONF.nmpi_lab.vcpus or os.cpu_count() or 1
        memory_mb = CONF.nmpi_lab.memory_mb or _host_memory_mb()
        root = _docker_root(self.hv)
        usage = shutil.disk_usage(root)
        disk_gb = CONF.nmpi_lab.disk_gb or usage.total // 2**30
        free_gb = min(disk_gb, usage.free // 2**30)
        return vcpus, memory_mb, disk_gb, free_gb

    def get_available_resource(self, nodename: str) -> dict[str, Any]:
        vcpus, memory_mb, disk_gb, free_gb = self._capacity()
        arch = obj_fields.Architecture.canonicalize(platform.machine())
        try:
            raw_version = str(self.hv.client.version().get("Version", "0"))
            version = versionutils.convert_version_to_int(raw_version.split("+")[0].split("-")[0])
        except Exception:
            version = 0
        return {
            "vcpus": vcpus,
            "memory_mb": memory_mb,
            "local_gb": disk_gb,
            "vcpus_used": 0,
            "memory_mb_used": 0,
            "local_gb_used": 0,
            "hypervisor_type": obj_fields.HVType.DOCKER,
            "hypervisor_version": version,
            "hypervisor_hostname": nodename,
            "cpu_info": json.dumps(
                {"arch": arch, "model": "container", "vendor": "nmpi-lab", "features": []}
            ),
            "disk_available_least": free_gb,
            "supported_instances": [
                (arch, obj_fields.HVType.DOCKER, obj_fields.VMMode.EXE),
                (arch, obj_fields.HVType.DOCKER, obj_fields.VMMode.HVM),
            ],
            "numa_topology": None,
        }

    def update_provider_tree(
        self, provider_tree: Any, nodename: str, allocations: Any = None
    ) -> None:
        vcpus, memory_mb, disk_gb, _ = self._capacity()
        inventory = provider_tree.data(nodename).inventory
        ratios = self._get_allocation_ratios(inventory)
        provider_tree.update_inventory(
            nodename,
            {
                VCPU: {
                    "total": vcpus,
                    "min_unit": 1,
                    "max_unit": vcpus,
                    "step_size": 1,
                    "allocation_ratio": ratios[VCPU],
                    "reserved": CONF.reserved_host_cpus,
                },
                MEMORY_MB: {
                    "total": memory_mb,
                    "min_unit": 1,
                    "max_unit": memory_mb,
                    "step_size": 1,
                    "allocation_ratio": ratios[MEMORY_MB],
                    "reserved": CONF.reserved_host_memory_mb,
                },
                DISK_GB: {
                    "total": disk_gb,
                    "min_unit": 1,
                    "max_unit": disk_gb,
                    "step_size": 1,
                    "allocation_ratio": ratios[DISK_GB],
                    "reserved": self._get_reserved_host_disk_gb_from_config(),
                },
            },
        )

    def get_host_ip_addr(self) -> str:
        return str(CONF.my_ip)

    def get_host_uptime(self) -> str:
        with open("/proc/uptime") as uptime:
            seconds = float(uptime.read().split()[0])
        return f"up {seconds / 86400:.2f} days"

    # -- instances ---------------------------------------------------------------------------

    def list_instances(self) -> list[str]:
        return [name or uuid for uuid, name in self.hv.list_instances()]

    def list_instance_uuids(self) -> list[str]:
        return [uuid for uuid, _ in self.hv.list_instances()]

    def instance_exists(self, instance: Any) -> bool:
        return self.hv.exists(instance.uuid)

    def get_info(self, instance: Any, use_cache: bool = True) -> Any:
        try:
            state = self.hv.power_state(instance.uuid)
            internal_id = self.hv.container_id(instance.uuid)
        except docker_vm.NotFoundError as exc:
            raise exception.InstanceNotFound(instance_id=instance.uuid) from exc
        return hardware.InstanceInfo(state=_POWER_STATES[state], internal_id=internal_id)

    def get_console_output(self, context: Any, instance: Any) -> str:
        try:
            return self.hv.console_log(instance.uuid)
        except docker_vm.NotFoundError as exc:
            raise exception.InstanceNotFound(instance_id=instance.uuid) from exc

    def spawn(
        self,
        context: Any,
        instance: Any,
        image_meta: Any,
        injected_files: Any,
        admin_password: Any,
        allocations: Any,
        network_info: Any = None,
        block_device_info: Any = None,
        power_on: bool = True,
        accel_info: Any = None,
    ) -> None:
        volumes = self._volumes(block_device_info, refuse_root=True)
        interfaces = self._interfaces(context, network_info)
        raw_user_data = cloud_config.decode_user_data(instance.user_data)
        keys = [instance.key_data] if instance.key_data else []
        init = cloud_config.render(
            instance_id=instance.uuid,
            default_user_name=CONF.nmpi_lab.default_user,
            public_keys=keys,
            user_data=raw_user_data,
        )
        for warning in init.warnings:
            LOG.warning("user data: %s", warning, instance=instance)
        if admin_password:
            LOG.info("admin password ignored: instances have key-based logins", instance=instance)
        files = list(docker_vm.guest_files(init, raw_user_data))
        for path, contents in injected_files or []:
            data = contents if isinstance(contents, bytes) else str(contents).encode()
            files.append(docker_vm.GuestFile(str(path), data, 0o644))
        limits = CONF.nmpi_lab.enforce_flavor_limits
        spec = docker_vm.VMSpec(
            instance_uuid=instance.uuid,
            display_name=instance.display_name or "",
            nova_name=instance.name,
            hostname=instance.hostname or _hostname(instance.display_name or instance.uuid),
            image=self._image(instance),
            interfaces=interfaces,
            files=tuple(files),
            memory_mb=instance.flavor.memory_mb if limits else None,
            vcpus=instance.flavor.vcpus if limits else None,
        )
        try:
            self.hv.create(spec)
        except docker_vm.LabError as exc:
            raise exception.InstanceDeployFailure(reason=str(exc)) from exc
        try:
            self.hv.set_volumes(instance.uuid, volumes)
            if power_on:
                started = time.monotonic()
                self.hv.start(instance.uuid)
                if self.hv.wait_for_boot(instance.uuid, CONF.nmpi_lab.boot_timeout):
                    LOG.info(
                        "instance booted, users and keys in place in %.1fs",
                        time.monotonic() - started,
                        instance=instance,
                    )
                else:
                    LOG.warning(
                        "first-boot stage not done after %ss; see the console log",
                        CONF.nmpi_lab.boot_timeout,
                        instance=instance,
                    )
        except Exception as exc:
            LOG.error("spawn failed, removing the container: %s", exc, instance=instance)
            self._remove(instance, network_info, block_device_info)
            if isinstance(exc, docker_vm.LabError):
                raise exception.InstanceDeployFailure(reason=str(exc)) from exc
            raise

    def destroy(
        self,
        context: Any,
        instance: Any,
        network_info: Any,
        block_device_info: Any = None,
        destroy_disks: bool = True,
        destroy_secrets: bool = True,
    ) -> None:
        self._remove(instance, network_info, block_device_info)

    def cleanup(
        self,
        context: Any,
        instance: Any,
        network_info: Any,
        block_device_info: Any = None,
        destroy_disks: bool = True,
        migrate_data: Any = None,
        destroy_vifs: bool = True,
        destroy_secrets: bool = True,
    ) -> None:
        self._remove(instance, network_info, block_device_info)

    def _remove(self, instance: Any, network_info: Any, block_device_info: Any) -> None:
        """Remove the container, release its volumes, prune unused networks. Idempotent."""
        self._save_console(instance.uuid)
        network_ids = self.hv.delete(instance.uuid)
        for _, file in self._volumes(block_device_info, refuse_root=False, strict=False):
            for loop in docker_vm.loops_of(file):
                if not docker_vm.loop_in_use(loop):
                    with contextlib.suppress(docker_vm.LabError):
                        docker_vm.loop_detach(loop, file)
        with contextlib.suppress(Exception):
            network_ids += [vif["network"]["id"] for vif in network_info or []]
        self.hv.prune_networks(network_ids)

    def _save_console(self, instance_uuid: str) -> None:
        folder = Path(CONF.nmpi_lab.state_dir, "consoles")
        try:
            text = self.hv.console_log(instance_uuid)
        except docker_vm.NotFoundError:
            return
        except Exception as exc:
            LOG.debug("console of %s not saved: %s", instance_uuid, exc)
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{instance_uuid}.log").write_text(text)
            saved = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime)
            for old in saved[:-CONSOLES_KEPT]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            LOG.debug("console of %s not saved: %s", instance_uuid, exc)

    # -- power ---------------------------------------------------------------------------------

    def _call(self, instance: Any, failure: Any, action: Any, *args: Any) -> None:
        try:
            action(instance.uuid, *args)
        except docker_vm.NotFoundError as exc:
            raise exception.InstanceNotFound(instance_id=instance.uuid) from exc
        except docker_vm.LabError as exc:
            raise failure(reason=str(exc)) from exc

    def power_off(self, instance: Any, timeout: int = 0, retry_interval: int = 0) -> None:
        self._call(instance, exception.InstancePowerOffFailure, self.hv.stop, int(timeout or 0))

    def power_on(
        self,
        context: Any,
        instance: Any,
        network_info: Any,
        block_device_info: Any = None,
        accel_info: Any = None,
        share_info: Any = None,
    ) -> None:
        self._ensure_networks(context, instance, network_info)
        volumes = self._volumes(block_device_info, refuse_root=False)
        self._call(instance, exception.InstancePowerOnFailure, self.hv.set_volumes, volumes)
        self._call(instance, exception.InstancePowerOnFailure, self.hv.start)

    def reboot(
        self,
        context: Any,
        instance: Any,
        network_info: Any,
        reboot_type: str,
        block_device_info: Any = None,
        bad_volumes_callback: Any = None,
        accel_info: Any = None,
        share_info: Any = None,
    ) -> None:
        if reboot_type.upper() == "SOFT":
            self._call(
                instance, exception.InstanceRebootFailure, self.hv.stop, CONF.shutdown_timeout
            )
        else:
            self._call(instance, exception.InstanceRebootFailure, self.hv.kill)
        self._ensure_networks(context, instance, network_info)
        volumes = self._volumes(block_device_info, refuse_root=False)
        self._call(instance, exception.InstanceRebootFailure, self.hv.set_volumes, volumes)
        self._call(instance, exception.InstanceRebootFailure, self.hv.start)

    def resume_state_on_host_boot(
        self,
        context: Any,
        instance: Any,
        network_info: Any,
        share_info: Any,
        block_device_info: Any = None,
    ) -> None:
        self.power_on(context, instance, network_info, block_device_info)

    def pause(self, instance: Any) -> None:
        self._call(instance, exception.NovaException, self.hv.pause)

    def unpause(self, instance: Any) -> None:
        self._call(instance, exception.NovaException, self.hv.unpause)

    def suspend(self, context: Any, instance: Any) -> None:
        self._call(instance, exception.NovaException, self.hv.pause)

    def resume(
        self,
        context: Any,
        instance: Any,
        network_info: Any,
        block_device_info: Any = None,
        share_info: Any = None,
    ) -> None:
        self._call(instance, exception.NovaException, self.hv.unpause)

    def default_root_device_name(self, instance: Any, image_meta: Any, root_bdm: Any) -> str:
        """/dev/vda, as on a KVM cloud: Nova then names volumes /dev/vdb, /dev/vdc..."""
        return ROOT_DEVICE

    def plug_vifs(self, instance: Any, network_info: Any) -> None:
        """Interfaces are made with the container (spawn); nothing to do afterwards."""

    def unplug_vifs(self, instance: Any, network_info: Any) -> None:
        """Interfaces go with the container."""

    def instance_on_disk(self, instance: Any) -> bool:
        return False

    # -- volumes ---------------------------------------------------------------------------------

    def get_volume_connector(self, instance: Any) -> dict[str, Any]:
        host = self._host or CONF.host
        return {
            "ip": CONF.my_block_storage_ip,
            "host": host,
            "initiator": f"nmpi-lab:{host}",
            "multipath": False,
            "platform": platform.machine(),
            "os_type": "linux",
        }

    def attach_volume(
        self,
        context: Any,
        connection_info: Any,
        instance: Any,
        mountpoint: str,
        disk_bus: Any = None,
        device_type: Any = None,
        encryption: Any = None,
    ) -> None:
        if encryption:
            raise exception.VolumeEncryptionNotSupported(
                volume_type=connection_info.get("driver_volume_type"),
                volume_id=connection_info.get("serial"),
            )
        file = _volume_file(connection_info)
        try:
            device = self.hv.attach_volume(instance.uuid, mountpoint, file)
        except docker_vm.NotFoundError as exc:
            raise exception.InstanceNotFound(instance_id=instance.uuid) from exc
        except docker_vm.LabError as exc:
            raise exception.NovaException(str(exc)) from exc
        LOG.info("volume %s is %s (/dev/%s)", file, mountpoint, device.loop, instance=instance)

    def detach_volume(
        self,
        context: Any,
        connection_info: Any,
        instance: Any,
        mountpoint: str,
        encryption: Any = None,
    ) -> None:
        file = _volume_file(connection_info)
        try:
            self.hv.detach_volume(instance.uuid, mountpoint, file)
        except docker_vm.DeviceBusyError as exc:
            raise exception.DeviceDetachFailed(device=mountpoint, reason=str(exc)) from exc
        except docker_vm.LabError as exc:
            raise exception.DeviceDetachFailed(device=mountpoint, reason=str(exc)) from exc
        LOG.info("volume %s detached from %s", file, mountpoint, instance=instance)

    def extend_volume(
        self, context: Any, connection_info: Any, instance: Any, requested_size: int
    ) -> int:
        try:
            docker_vm.loop_refresh_capacity(_volume_file(connection_info))
        except docker_vm.LabError as exc:
            raise exception.NovaException(str(exc)) from exc
        return requested_size

    # -- helpers -----------------------------------------------------------------------------------

    def _ensure_networks(self, context: Any, instance: Any, network_info: Any) -> None:
        """Make again a Docker network that went away while the instance was stopped.

        (docker_vm.repair_networks reconnects the container to it.) Best effort: a failure
        here shows up as the start's own error.
        """
        try:
            missing = [
                vif
                for vif in network_info or []
                if not self.hv.network_exists(vif["network"]["id"])
            ]
            if missing:
                self.hv.repair_networks(instance.uuid, self._interfaces(context, network_info))
        except Exception as exc:
            LOG.warning("networks not checked before the start: %s", exc, instance=instance)

    def _image(self, instance: Any) -> str:
        system_metadata = instance.system_metadata or {}
        chosen = system_metadata.get(f"image_{IMAGE_PROPERTY}")
        return str(chosen or CONF.nmpi_lab.docker_image)

    def _volumes(
        self, block_device_info: Any, *, refuse_root: bool, strict: bool = True
    ) -> list[tuple[str, str]]:
        """[(mountpoint, volume file)] of the Cinder volumes in block_device_info."""
        root = driver.block_device_info_get_root_device(block_device_info)
        volumes = []
        for bdm in driver.block_device_info_get_mapping(block_device_info):
            mountpoint = bdm.get("mount_device")
            connection_info = bdm.get("connection_info") or {}
            if refuse_root and root and mountpoint == root:
                raise exception.InstanceDeployFailure(
                    reason="the lab hypervisor cannot boot from a volume"
                )
            try:
                file = _volume_file(connection_info)
            except exception.NovaException:
                if strict:
                    raise
                continue
            if mountpoint:
                volumes.append((str(mountpoint), file))
        return volumes

    def _interfaces(self, context: Any, network_info: Any) -> tuple[docker_vm.Interface, ...]:
        interfaces = []
        for vif in network_info or []:
            network = vif["network"]
            chosen = None
            for subnet in network["subnets"]:
                ips = [ip["address"] for ip in subnet["ips"] if ip.get("version") == 4]
                if ips and subnet.get("version") == 4:
                    chosen = (subnet, ips[0])
                    break
            if chosen is None:
                raise exception.InstanceDeployFailure(
                    reason=f"port {vif['id']} has no IPv4 address (the lab needs one per port)"
                )
            subnet, address = chosen
            gateway = subnet.get("gateway") or {}
            mtu = network.get_meta("mtu") if hasattr(network, "get_meta") else None
            interfaces.append(
                docker_vm.Interface(
                    network_id=str(network["id"]),
                    subnet_id=self._subnet_id(context, network["id"], subnet["cidr"]),
                    cidr=str(subnet["cidr"]),
                    gateway=gateway.get("address") or None,
                    ip=str(address),
                    mac=str(vif["address"]),
                    mtu=int(mtu) if mtu else None,
                    dns=tuple(str(dns["address"]) for dns in subnet.get("dns") or []),
                )
            )
        if not interfaces:
            raise exception.InstanceDeployFailure(
                reason="the lab hypervisor needs at least one network for a server"
            )
        return tuple(interfaces)

    @staticmethod
    def _subnet_id(context: Any, network_id: str, cidr: str) -> str:
        """Nova's network_info has no subnet ids: ask Neutron (for the network's label)."""
        try:
            client = neutron.get_client(context, admin=True)
            subnets = client.list_subnets(network_id=network_id, cidr=cidr, fields=["id"])
            found = subnets.get("subnets") or []
            return str(found[0]["id"]) if found else ""
        except Exception as exc:
            LOG.warning("subnet id of %s in %s not found: %s", cidr, network_id, exc)
            return ""


def _volume_file(connection_info: Any) -> str:
    kind = (connection_info or {}).get("driver_volume_type")
    if kind not in VOLUME_TYPES:
        raise exception.VolumeDriverNotFound(driver_type=kind)
    path = ((connection_info or {}).get("data") or {}).get("device_path")
    if not path:
        raise exception.InvalidBDMFormat(details="connection_info has no data.device_path")
    return str(path)


def _hostname(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "-" else "-" for c in name.lower()).strip("-")
    return cleaned[:63] or "instance"


def _host_memory_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


def _docker_root(hv: docker_vm.DockerHypervisor) -> str:
    try:
        root = str(hv.client.info().get("DockerRootDir") or "/var/lib/docker")
    except Exception:
        root = "/var/lib/docker"
    return root if os.path.isdir(root) else "/"


__all__: Sequence[str] = ("LabDriver", "list_opts")
