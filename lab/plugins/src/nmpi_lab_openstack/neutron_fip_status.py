"""Floating IP status without an L3 agent: ACTIVE while associated, DOWN otherwise.

Neutron's router service plugin creates floating IPs DOWN and leaves the status to the L3
agent, which the lab does not run (the lab network agent wires floating IPs with iptables
from the API's state, see netagent.py). openstacksdk's create-and-wait deletes a floating
IP that never turns ACTIVE, so this service plugin plays the agent's part in the status:

- FLOATING_IP AFTER_CREATE and AFTER_UPDATE: status ACTIVE if the floating IP has a port,
  DOWN otherwise. AFTER_UPDATE is also what Neutron publishes when it disassociates the
  floating IPs of a port that is deleted (disassociate_floatingips), so the status goes
  DOWN with the port.

The status is written through the L3 plugin's update_floatingip_status, and also put into
the event's dict, which is the very dict the API returns: the response already tells the
status clients will read later.

Configuration: service_plugins = router,nmpi_lab_openstack.neutron_fip_status.FloatingIPStatusPlugin
"""

from __future__ import annotations

from typing import Any, ClassVar

from neutron_lib import constants as n_const
from neutron_lib.callbacks import events, registry, resources
from neutron_lib.plugins import constants as plugin_constants
from neutron_lib.plugins import directory
from neutron_lib.services import base as service_base
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

PLUGIN_TYPE = "NMPI_LAB_FIP_STATUS"


def wanted_status(floating_ip: dict[str, Any]) -> str:
    """ACTIVE when associated to a port, DOWN otherwise."""
    if floating_ip.get("port_id"):
        return str(n_const.FLOATINGIP_STATUS_ACTIVE)
    return str(n_const.FLOATINGIP_STATUS_DOWN)


@registry.has_registry_receivers
class FloatingIPStatusPlugin(service_base.ServicePluginBase):
    """Keeps floating IP status in step with association (the L3 agent's report)."""

    supported_extension_aliases: ClassVar[list[str]] = []

    def get_plugin_type(self) -> str:
        return PLUGIN_TYPE

    def get_plugin_description(self) -> str:
        return "Sets floating IP status ACTIVE when associated and DOWN otherwise (no L3 agent)."

    @registry.receives(resources.FLOATING_IP, [events.AFTER_CREATE, events.AFTER_UPDATE])
    def _floating_ip_changed(self, resource: str, event: str, trigger: Any, payload: Any) -> None:
        floating_ip = payload.latest_state
        if not isinstance(floating_ip, dict) or not floating_ip.get("id"):
            return
        status = wanted_status(floating_ip)
        l3 = directory.get_plugin(plugin_constants.L3)
        if l3 is None:
            LOG.warning("nmpi_lab: no L3 plugin loaded: floating IP status left alone")
            return
        try:
            l3.update_floatingip_status(payload.context.elevated(), floating_ip["id"], status)
        except Exception:  # the API call that triggered this must not fail for a status
            LOG.exception("nmpi_lab: could not set floating IP %s %s", floating_ip["id"], status)
            return
        floating_ip["status"] = status
        LOG.debug("nmpi_lab: floating IP %s is %s (%s)", floating_ip["id"], status, event)
