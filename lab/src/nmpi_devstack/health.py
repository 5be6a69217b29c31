"""What the APIs say about the daemons: nova-compute, cinder-volume, designate-* "up".

A daemon without a port is healthy when its region's service list shows it up (the same view
as `openstack compute service list`), which also proves it reaches the database and broker.
A daemon just (re)started counts only once it has reported since its start: its record stays
"up" for a while after the old process stopped, and nova-compute reports only after init_host,
which errors out every instance scheduled to it meanwhile ("stuck in BUILDING").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

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


class ServiceState(NamedTuple):
    state: str  # "up", or what the list says instead
    reported_at: float | None  # the record's last update (epoch seconds), when the API says


def _epoch(value: Any) -> float | None:
    """An API timestamp (ISO 8601, UTC when naive) as epoch seconds; None when absent."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def service_states(
    conn: openstack.connection.Connection, service_type: str
) -> dict[str, ServiceState]:
    """binary -> its state from one region's service list (designate: service name)."""
    states: dict[str, ServiceState] = {}
    if service_type == "compute":
        for nova in conn.compute.services():
            up = nova.state == "up" and nova.status == "enabled"
            states[nova.binary] = ServiceState(
                "up" if up else str(nova.state), _epoch(nova.updated_at)
            )
    elif service_type == "block-storage":
        for cinder in conn.block_storage.services():
            up = cinder.state == "up" and cinder.status == "enabled"
            states[cinder.binary] = ServiceState(
                "up" if up else str(cinder.state), _epoch(cinder.updated_at)
            )
    elif service_type == "dns":
        for designate in conn.dns.service_statuses():
            up = designate.status == "UP"
            states[designate.service_name] = ServiceState(
                "up" if up else str(designate.status).lower(), _epoch(designate.heartbeated_at)
            )
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
        self._cache: dict[tuple[str, str], dict[str, ServiceState] | str] = {}

    def refresh(self) -> None:
        self._cache.clear()

    def state(
        self, region: str, service_type: str, binary: str, since: float | None = None
    ) -> str | None:
        """None when up (and, with since, reported at or after that epoch second), else why."""
        key = (region, service_type)
        if key not in self._cache:
            try:
                self._cache[key] = service_states(self.conn(region), service_type)
            except API_ERRORS as e:
                self._cache[key] = f"{service_type} API of {region}: {type(e).__name__}: {e}"
        states = self._cache[key]
        if isinstance(states, str):
            return states
        found = states.get(binary)
        if found is None or found.state != "up":
            state = found.state if found else "not registered"
            return f"{binary} is {state} in the {service_type} service list"
        # the database may keep whole seconds only
        if since is not None and (found.reported_at is None or found.reported_at < int(since)):
            return f"{binary} has not reported in the {service_type} service list since its start"
        return None

    def pending(
        self, keys: Iterable[ServiceKey], since: Mapping[ServiceKey, float] | None = None
    ) -> dict[ServiceKey, str]:
        self.refresh()
        result = {}
        for key in keys:
            reason = self.state(*key, since=(since or {}).get(key))
            if reason is not None:
                result[key] = reason
        return result
