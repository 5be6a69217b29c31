"""The lab's ML2 mechanism driver: binds every port, on any host, with no agent.

Neutron ML2 only binds a port when a mechanism driver accepts the host; the shipped
drivers need their agent alive on that host, and the lab runs none. This driver binds
any host on the network types the lab uses (flat for the external networks; local, vlan,
vxlan, geneve or gre for tenant networks, whichever the region's tenant_network_types
chose), with vif_type "other": the lab's container hypervisor plugs the port itself (one
Docker network per Neutron network, see netagent.py for the wiring of floating IPs and
security groups).

With no L2 agent to report "wired", the binding itself sets the port ACTIVE (the binding
commit applies the status a driver passes to set_binding). A port administratively down
is bound DOWN, and a later change of admin_state_up is reflected in its status.
Nova receives network-vif-plugged for the port when it becomes ACTIVE, at binding time,
before the hypervisor has attached it: a driver that waits for that event must start
waiting before it binds (or not wait).

Configuration: [ml2] mechanism_drivers = nmpi_lab (entry point in the plugins' pyproject).
"""

from __future__ import annotations

from typing import Any

from neutron_lib import constants as n_const
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

SUPPORTED_NETWORK_TYPES = frozenset(
    {
        n_const.TYPE_FLAT,
        n_const.TYPE_LOCAL,
        n_const.TYPE_VLAN,
        n_const.TYPE_VXLAN,
        n_const.TYPE_GENEVE,
        n_const.TYPE_GRE,
    }
)
SUPPORTED_VNIC_TYPES = frozenset({portbindings.VNIC_NORMAL})
VIF_TYPE = portbindings.VIF_TYPE_OTHER
VIF_DETAILS = {
    # Security groups are enforced (by the lab network agent, inside the instance).
    portbindings.CAP_PORT_FILTER: True,
    portbindings.VIF_DETAILS_CONNECTIVITY: portbindings.CONNECTIVITY_L2,
}


def _status(port: dict[str, Any]) -> str:
    if port.get("admin_state_up", True):
        return str(n_const.PORT_STATUS_ACTIVE)
    return str(n_const.PORT_STATUS_DOWN)


class LabMechanismDriver(api.MechanismDriver):
    """Binds any port on any host; the port is ACTIVE once bound (DOWN if admin down)."""

    def initialize(self) -> None:
        LOG.info(
            "nmpi_lab mechanism driver: binding %s networks on any host",
            ", ".join(sorted(SUPPORTED_NETWORK_TYPES)),
        )

    @property
    def connectivity(self) -> str:
        return str(portbindings.CONNECTIVITY_L2)

    def bind_port(self, context: Any) -> None:
        port = context.current
        vnic_type = port.get(portbindings.VNIC_TYPE, portbindings.VNIC_NORMAL)
        if vnic_type not in SUPPORTED_VNIC_TYPES:
            LOG.debug("nmpi_lab: not binding port %s of vnic_type %s", port["id"], vnic_type)
            return
        for segment in context.segments_to_bind:
            if segment[api.NETWORK_TYPE] in SUPPORTED_NETWORK_TYPES:
                context.set_binding(
                    segment[api.ID], VIF_TYPE, dict(VIF_DETAILS), status=_status(port)
                )
                LOG.debug(
                    "nmpi_lab: bound port %s on host %s to %s segment %s",
                    port["id"],
                    context.host,
                    segment[api.NETWORK_TYPE],
                    segment[api.ID],
                )
                return
        LOG.warning(
            "nmpi_lab: port %s: no segment of a supported type among %s",
            port["id"],
            [s[api.NETWORK_TYPE] for s in context.segments_to_bind],
        )

    def update_port_postcommit(self, context: Any) -> None:
        """Follow admin_state_up of a bound port (an agent would report it)."""
        port, original = context.current, context.original
        if not original or port.get("admin_state_up") == original.get("admin_state_up"):
            return
        if context.vif_type in (
            portbindings.VIF_TYPE_UNBOUND,
            portbindings.VIF_TYPE_BINDING_FAILED,
        ):
            return
        status = _status(port)
        if port.get("status") == status:
            return
        try:
            directory.get_plugin().update_port_status(
                context.plugin_context, port["id"], status, context.host
            )
        except Exception:  # the API call that got here must not fail for a status
            LOG.exception("nmpi_lab: could not set port %s %s", port["id"], status)
