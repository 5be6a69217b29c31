"""The public name in OpenStack Designate, through openstacksdk's DNS proxy (recordsets).

Designate has no update prerequisites, so the compare-and-swap is read-compare-write:
read the A/AAAA recordsets, refuse (DnsConflictError) unless they hold exactly the
addresses the decision saw, then write. RACE WINDOW: another writer that changes the
recordset between our read and our write (typically well under a second) is overwritten.
Only the lease holder writes, and `switchover` from the CLI writes the same value the
daemon would, so the window only matters with a second, foreign writer.

Designate answers its API before its name servers serve the change (recordset status
PENDING -> ACTIVE); reads here show the API's view, which is what the next write compares
against. openstacksdk is synchronous: calls run in a worker thread under a deadline; a
call that overruns keeps its thread until openstacksdk's own api_timeout ends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..config import Config
from ..model import DnsRecord
from ..ports import ActuatorError, DnsConflictError
from .dns_rfc2136 import address_type

ConnectionFactory = Callable[[str], Any]  # cloud name -> openstack.connection.Connection


def connect(cloud: str, api_timeout: float) -> Any:
    """A connection from clouds.yaml; imported lazily, openstacksdk is slow to import."""
    import openstack

    return openstack.connect(cloud=cloud, api_timeout=api_timeout)


class _Recordset(Protocol):
    id: str
    type: str
    records: list[str]
    ttl: int | None


def addresses_of(recordsets: Iterable[_Recordset]) -> frozenset[str]:
    """The addresses in the name's A and AAAA recordsets (pure: unit-tested)."""
    return frozenset(
        str(r) for rs in recordsets if rs.type in ("A", "AAAA") for r in rs.records or []
    )


class DesignateDns:
    """`ports.DnsProvider` over Designate (the witness's cloud, never a site's)."""

    def __init__(
        self,
        config: Config,
        *,
        timeout: float | None = None,
        connection_factory: ConnectionFactory | None = None,
    ) -> None:
        designate = config.dns.designate
        if designate is None:
            raise ValueError("the config has no dns.designate block")
        self.cloud = designate.cloud
        self.zone_name = designate.zone
        self.record = config.dns.record
        self.ttl = config.dns.ttl
        self.timeout = timeout if timeout is not None else config.probe_timeout
        self._factory = connection_factory or (lambda cloud: connect(cloud, self.timeout))
        self._connection: Any = None
        self._zone: Any = None

    def _conn(self) -> Any:
        if self._connection is None:
            self._connection = self._factory(self.cloud)
        return self._connection

    def _zone_obj(self) -> Any:
        if self._zone is None:
            self._zone = self._conn().dns.find_zone(self.zone_name, ignore_missing=False)
        return self._zone

    def _recordsets(self) -> list[Any]:
        conn, zone = self._conn(), self._zone_obj()
        found = []
        for rdtype in ("A", "AAAA"):
            for rs in conn.dns.recordsets(zone, name=self.record, type=rdtype):
                if rs.name == self.record and rs.type == rdtype:
                    found.append(rs)
        return found

    def _read_sync(self) -> DnsRecord:
        recordsets = self._recordsets()
        ttls = [rs.ttl for rs in recordsets if rs.ttl is not None]
        return DnsRecord(self.record, addresses_of(recordsets), min(ttls) if ttls else None)

    def _point_sync(self, address: str, expected_current: frozenset[str]) -> None:
        conn, zone = self._conn(), self._zone_obj()
        recordsets = self._recordsets()
        current = addresses_of(recordsets)
        if current != expected_current:
            raise DnsConflictError(
                f"{self.record} holds {sorted(current) or 'no address'}, not "
                f"{sorted(expected_current) or 'no address'}; not overwriting it"
            )
        # --- race window: from the read above to the writes below ---
        wanted = address_type(address).name  # "A" or "AAAA"
        kept = None
        for rs in recordsets:
            if rs.type == wanted and kept is None:
                kept = conn.dns.update_recordset(rs, records=[address], ttl=self.ttl)
            else:
                conn.dns.delete_recordset(rs, zone)
        if kept is None:
            conn.dns.create_recordset(
                zone, name=self.record, type=wanted, records=[address], ttl=self.ttl
            )

    async def read(self) -> DnsRecord | None:
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.to_thread(self._read_sync)
        except Exception:  # openstacksdk raises many kinds; a read only reports "unseen"
            self._zone = None
            return None

    async def point(self, address: str, expected_current: frozenset[str]) -> None:
        try:
            # Writes get longer than a read: Designate's API may be slow to accept them.
            async with asyncio.timeout(max(self.timeout * 4, 10.0)):
                await asyncio.to_thread(self._point_sync, address, expected_current)
        except DnsConflictError:
            raise
        except TimeoutError:
            raise ActuatorError("dns", f"Designate did not answer in time ({self.cloud})") from None
        except Exception as exc:
            self._zone = None
            raise ActuatorError("dns", f"Designate update failed: {exc}") from None
