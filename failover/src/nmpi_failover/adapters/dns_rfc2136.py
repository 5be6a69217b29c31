"""The public name on an authoritative server: direct reads and TSIG-signed RFC 2136 updates.

Reads go straight to the configured primary with recursion off and must come back
authoritative (AA), so a cache can never make the controller think the name already
moved. Updates are a compare-and-swap: their prerequisite section (RFC 2136 section 2.4)
states the addresses the decision saw, per type, "RRset exists (value dependent)" for a
type that had addresses and "RRset does not exist" for one that had none. The server
applies the delete+add only if every prerequisite holds, atomically, and answers
YXRRSET/NXRRSET otherwise, which becomes DnsConflictError: someone else moved the name,
so the next round re-observes instead of overwriting them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.update

from ..config import Config, read_secret
from ..model import DnsRecord
from ..ports import ActuatorError, DnsConflictError

ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
# Prerequisite failures: the record did not hold what the decision saw.
_CONFLICT_RCODES = frozenset({dns.rcode.YXRRSET, dns.rcode.NXRRSET, dns.rcode.NXDOMAIN})


def address_type(address: str) -> dns.rdatatype.RdataType:
    return dns.rdatatype.A if ipaddress.ip_address(address).version == 4 else dns.rdatatype.AAAA


def build_update(
    zone: str,
    record: str,
    address: str,
    expected_current: Iterable[str],
    ttl: int,
    key: dns.tsig.Key | None,
) -> dns.update.UpdateMessage:
    """The compare-and-swap UPDATE: prerequisites = `expected_current`, then delete + add."""
    name = dns.name.from_text(record)
    update = dns.update.UpdateMessage(zone, keyring=key)
    expected = sorted(expected_current)
    for rdtype in ADDRESS_TYPES:
        values = [a for a in expected if address_type(a) == rdtype]
        if values:
            # Value-dependent: the whole RRset must equal these values (TTL 0 in prereqs).
            rdataset = dns.rdataset.from_text(dns.rdataclass.IN, rdtype, 0, *values)
            update.present(name, rdataset)
        else:
            update.absent(name, rdtype)
    for rdtype in ADDRESS_TYPES:
        update.delete(name, rdtype)
    update.add(name, ttl, address_type(address), address)
    return update


class Rfc2136Dns:
    """`ports.DnsProvider` for a primary name server accepting TSIG-signed dynamic updates."""

    def __init__(self, config: Config, *, timeout: float | None = None) -> None:
        rfc = config.dns.rfc2136
        if rfc is None:
            raise ValueError("the config has no dns.rfc2136 block")
        self.server = rfc.server
        self.port = rfc.port
        self.zone = rfc.zone
        self.record = config.dns.record
        self.ttl = config.dns.ttl
        self.timeout = timeout if timeout is not None else config.probe_timeout
        self.key = dns.tsig.Key(
            rfc.tsig.key_name, read_secret(rfc.tsig.secret_file), rfc.tsig.algorithm
        )

    async def _where(self) -> str:
        """dnspython wants an address; the config may name the server by host name."""
        try:
            ipaddress.ip_address(self.server)
            return self.server
        except ValueError:
            pass
        infos = await asyncio.get_running_loop().getaddrinfo(
            self.server, self.port, type=socket.SOCK_STREAM
        )
        return str(infos[0][4][0])

    async def _read_type(self, where: str, rdtype: dns.rdatatype.RdataType) -> DnsRecord | None:
        query = dns.message.make_query(self.record, rdtype)
        query.flags &= ~dns.flags.RD  # ask the authority itself, never a resolver's view
        response, _ = await dns.asyncquery.udp_with_fallback(
            query, where, timeout=self.timeout, port=self.port
        )
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        if not response.flags & dns.flags.AA:
            return None  # not the authority for the name: its answer proves nothing
        name = dns.name.from_text(self.record)
        for rrset in response.answer:
            if rrset.name == name and rrset.rdtype == rdtype:
                addresses = frozenset(str(rdata) for rdata in rrset)
                return DnsRecord(self.record, addresses, rrset.ttl)
        return DnsRecord(self.record, frozenset())

    async def read(self) -> DnsRecord | None:
        try:
            where = await self._where()
            parts = await asyncio.gather(*(self._read_type(where, t) for t in ADDRESS_TYPES))
        except (dns.exception.DNSException, OSError, EOFError):
            return None
        if any(part is None for part in parts):
            return None
        addresses: frozenset[str] = frozenset()
        ttls = []
        for part in parts:
            assert part is not None
            addresses |= part.addresses
            if part.ttl is not None:
                ttls.append(part.ttl)
        return DnsRecord(self.record, addresses, min(ttls) if ttls else None)

    async def point(self, address: str, expected_current: frozenset[str]) -> None:
        update = build_update(self.zone, self.record, address, expected_current, self.ttl, self.key)
        try:
            where = await self._where()
            # TCP: an update must not be silently retried over UDP after a lost answer.
            response = await dns.asyncquery.tcp(update, where, timeout=self.timeout, port=self.port)
        except dns.exception.Timeout:
            raise ActuatorError(
                "dns", f"no answer from {self.server}:{self.port} within {self.timeout:g} s"
            ) from None
        except dns.tsig.PeerError as exc:
            raise ActuatorError(
                "dns", f"{self.server} rejected the TSIG key {self.key.name}: {exc}"
            ) from None
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            raise ActuatorError(
                "dns", f"update to {self.server}:{self.port} failed: {exc!r}"
            ) from None
        rcode = response.rcode()
        if rcode in _CONFLICT_RCODES:
            raise DnsConflictError(
                f"{self.record} no longer holds {sorted(expected_current) or 'no address'} "
                f"(server answered {dns.rcode.to_text(rcode)}); not overwriting it"
            )
        if rcode != dns.rcode.NOERROR:
            raise ActuatorError(
                "dns",
                f"{self.server} refused the update of {self.record}: {dns.rcode.to_text(rcode)}",
            )
