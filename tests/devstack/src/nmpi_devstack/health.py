"""What the APIs say about the daemons: nova-compute, cinder-volume, designate-* "up".

A daemon without a port is healthy when its region's service list shows it up (the same view
as `openstack compute service list`), which also proves it reaches the database and broker.
"""

from __future__ import annotations

from collections.abc import Iterable

import openstack.connection
import openstack.exceptions
from keystoneauth1 import exceptions as ksa_exceptions

from .credentials import Secrets
from .keystone import connect

ServiceKey = tuple[str, str, str]  # (region or "shared", service type, binary)

# the same errors mean "the API does not answer (yet)"
API_ERRORS: tuple[type[Exception], ...] = (
    openstack.exceptions.SDKException,
    ksa_exceptions.ClientException,
    OSError,
)


def service_states(conn: openstack.connection.Connection, service_type: str) -> dict[str, str]:
    """binary -> "up"/"down" from one region's service list (designate: service name)."""
    states: dict[str, str] = {}
    if service_type == "compute":
        for nova in conn.compute.services():
            up = nova.state == "up" and nova.status == "enabled"
            states[nova.binary] = "up" if up else str(nova.state)
    elif service_type == "block-storage":
        for cinder in conn.block_storage.services():
            up = cinder.state == "up" and cinder.status == "enabled"
            states[cinder.binary] = "up" if up else str(cinder.state)
    elif service_type == "dns":
        for designate in conn.dns.service_statuses():
            up = designate.status == "UP"
            states[designate.service_name] = "up" if up else str(designate.status).lower()
    return states


class AdminClients:
    """One admin connection per region, authenticated once and reused."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self._conns: dict[str, openstack.connection.Connection] = {}

    def __call__(self, region: str) -> openstack.connection.Connection:
        if region not in self._conns:
            self._conns[region] = connect(self.secrets, region)
        return self._conns[region]


class ServiceView:
    """Service lists fetched once per (region, type) and cached for one status or wait round."""

    def __init__(self, conn: AdminClients) -> None:
        self.conn = conn
        self._cache: dict[tuple[str, str], dict[str, str] | str] = {}

    def refresh(self) -> None:
        self._cache.clear()

    def state(self, region: str, service_type: str, binary: str) -> str | None:
        """None when up, else a reason."""
        key = (region, service_type)
        if key not in self._cache:
            try:
                self._cache[key] = service_states(self.conn(region), service_type)
            except API_ERRORS as e:
                self._cache[key] = f"{service_type} API of {region}: {type(e).__name__}: {e}"
        states = self._cache[key]
        if isinstance(states, str):
            return states
        state = states.get(binary)
        if state == "up":
            return None
        return f"{binary} is {state or 'not registered'} in the {service_type} service list"

    def pending(self, keys: Iterable[ServiceKey]) -> dict[ServiceKey, str]:
        self.refresh()
        result = {}
        for key in keys:
            reason = self.state(*key)
            if reason is not None:
                result[key] = reason
        return result
