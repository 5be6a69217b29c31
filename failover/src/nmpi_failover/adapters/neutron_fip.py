"""A site's floating IP moved between its web VMs through that site's own Neutron.

A floating IP cannot leave its cloud, so this only ever talks to the site the address
belongs to; moving the public name between sites is the DNS adapters' job. The move is a
compare-and-swap on Neutron's revision_number (If-Match), so a concurrent change by
someone else fails the update instead of being overwritten.

openstacksdk is synchronous: calls run in a worker thread under a deadline. The choices
(which VM the address is on, which port of the target VM) are pure functions, unit-tested
without a cloud.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from ..config import Config, SiteConfig
from ..decide import MoveFloatingIp
from ..model import FloatingIpState, SiteProbe
from ..ports import ActuatorError, SiteProber

ConnectionFactory = Callable[[str], Any]  # cloud name -> openstack.connection.Connection


class _Port(Protocol):
    id: str
    status: str | None
    network_id: str | None
    fixed_ips: list[dict[str, Any]] | None


def attached_vm(device_id: str | None, servers: Mapping[str, str]) -> str | None:
    """The configured web VM (name) whose server id is `device_id`.

    `servers` maps VM name -> Nova server id. A device that is none of them is reported
    by its id, so `decide` treats it as a VM that does not answer."""
    if not device_id:
        return None
    for name, server_id in servers.items():
        if server_id == device_id:
            return name
    return f"device {device_id}"


def choose_port(ports: Iterable[_Port], prefer_network: str | None = None) -> _Port:
    """The target VM's port to attach the floating IP to.

    Only ports with an IPv4 fixed address can carry a floating IP. Prefer the network the
    address is attached to now (the router that serves it reaches that network), then an
    ACTIVE port; ties keep Nova's order."""
    usable = [
        p
        for p in ports
        if any(":" not in str(ip.get("ip_address", "")) for ip in p.fixed_ips or [])
    ]
    if not usable:
        raise ActuatorError("neutron", "the target VM has no port with an IPv4 fixed address")

    def rank(port: _Port) -> tuple[bool, bool]:
        return (port.network_id != prefer_network, port.status != "ACTIVE")

    return sorted(usable, key=rank)[0]


def connect(cloud: str, api_timeout: float) -> Any:
    import openstack

    return openstack.connect(cloud=cloud, api_timeout=api_timeout)


class NeutronFloatingIps:
    """`ports.FloatingIps`: read the association from Neutron, probe each web VM directly."""

    def __init__(
        self,
        config: Config,
        prober: SiteProber,
        *,
        timeout: float | None = None,
        connection_factory: ConnectionFactory | None = None,
    ) -> None:
        self.config = config
        self.prober = prober
        self.timeout = timeout if timeout is not None else config.probe_timeout
        self._factory = connection_factory or (lambda cloud: connect(cloud, self.timeout))
        self._connections: dict[str, Any] = {}

    def _conn(self, cloud: str) -> Any:
        if cloud not in self._connections:
            self._connections[cloud] = self._factory(cloud)
        return self._connections[cloud]

    def _find_ip(self, conn: Any, address: str) -> Any:
        ips = list(conn.network.ips(floating_ip_address=address))
        if len(ips) != 1:
            raise ActuatorError(
                "neutron", f"expected one floating IP {address}, Neutron lists {len(ips)}"
            )
        return ips[0]

    def _server_ids(self, conn: Any, names: Sequence[str]) -> dict[str, str]:
        ids = {}
        for name in names:
            server = conn.compute.find_server(name, ignore_missing=True)
            if server is not None:
                ids[name] = server.id
        return ids

    def _attached_sync(self, site: SiteConfig) -> str | None:
        assert site.floating_ip is not None
        conn = self._conn(site.floating_ip.cloud)
        fip = self._find_ip(conn, site.address)
        if not fip.port_id:
            return None
        port = conn.network.get_port(fip.port_id)
        names = [vm.name for vm in site.floating_ip.web_vms]
        return attached_vm(port.device_id, self._server_ids(conn, names))

    async def read(self, site: SiteConfig) -> FloatingIpState | None:
        if site.floating_ip is None:
            return None
        vms = site.floating_ip.web_vms

        async def neutron() -> str | None:
            async with asyncio.timeout(self.timeout):
                return await asyncio.to_thread(self._attached_sync, site)

        results = await asyncio.gather(
            neutron(),
            *(self.prober.probe(site, vm.probe_url) for vm in vms),
            return_exceptions=True,
        )
        attached = results[0]
        if isinstance(attached, BaseException | SiteProbe):
            return None  # the site's Neutron did not answer: nothing to decide on
        probes: dict[str, SiteProbe] = {}
        for vm, probe in zip(vms, results[1:], strict=True):
            probes[vm.name] = (
                probe if isinstance(probe, SiteProbe) else SiteProbe(ok=False, error=str(probe))
            )
        return FloatingIpState(attached_vm=attached, vm_probes=probes)

    def _move_sync(self, action: MoveFloatingIp) -> None:
        site = self.config.site(action.site)
        if site.floating_ip is None:
            raise ActuatorError("neutron", f"{action.site} has no floating_ip block")
        conn = self._conn(site.floating_ip.cloud)
        fip = self._find_ip(conn, action.address)
        server = conn.compute.find_server(action.to_vm, ignore_missing=True)
        if server is None:
            raise ActuatorError("neutron", f"no server {action.to_vm} in {site.floating_ip.cloud}")
        current_network = conn.network.get_port(fip.port_id).network_id if fip.port_id else None
        port = choose_port(conn.network.ports(device_id=server.id), current_network)
        # If-Match on the revision: fails if the FIP changed since we read it.
        conn.network.update_ip(fip, if_revision=fip.revision_number, port_id=port.id)

    async def move(self, action: MoveFloatingIp) -> None:
        try:
            async with asyncio.timeout(max(self.timeout * 4, 10.0)):
                await asyncio.to_thread(self._move_sync, action)
        except ActuatorError:
            raise
        except TimeoutError:
            raise ActuatorError("neutron", f"Neutron of {action.site} did not answer") from None
        except Exception as exc:
            site = self.config.site(action.site)
            if site.floating_ip is not None:  # reconnect next time: the session may be stale
                self._connections.pop(site.floating_ip.cloud, None)
            raise ActuatorError("neutron", f"moving {action.address} failed: {exc}") from None
