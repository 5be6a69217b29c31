"""A stub resolver as a user's machine has one: it asks the lab's DNS server and caches the
answer for the record's TTL, never longer, unless the server does not answer at all.

Users do not talk to the authoritative server at the witness directly: their stub resolver
asks a recursive resolver, which caches for the TTL and, when the authoritative servers do not
answer, serves the expired answer (RFC 8767 "serve stale": BIND's stale-answer-enable, Unbound's
serve-expired). This class plays both parts: fresh answers for exactly the TTL, the last answer
when the server is unreachable (counted, so a scenario shows it), and an error only when there
was never an answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

QUERY_TIMEOUT = 1.0


class ResolveError(OSError):
    """No address for the name: the server never answered with one."""


@dataclass
class Answer:
    addresses: list[str]
    ttl: int
    expires: float  # time.monotonic()


class CachingResolver:
    def __init__(self, server: str, name: str, port: int = 53) -> None:
        self.server = server
        self.port = port
        self.name = name.rstrip(".") + "."
        self._answer: Answer | None = None
        self._lock = threading.Lock()
        self.queries = 0
        self.stale_answers = 0
        self.failures = 0

    def resolve(self) -> list[str]:
        with self._lock:
            now = time.monotonic()
            if self._answer is not None and now < self._answer.expires:
                return self._answer.addresses
            try:
                self._answer = self._query(now)
            except (OSError, dns.exception.DNSException) as exc:
                self.failures += 1
                if self._answer is None:
                    raise ResolveError(f"{self.name}: {self.server} did not answer: {exc}") from exc
                self.stale_answers += 1
            return self._answer.addresses

    def _query(self, now: float) -> Answer:
        self.queries += 1
        query = dns.message.make_query(self.name, dns.rdatatype.A)
        response = dns.query.udp(query, self.server, port=self.port, timeout=QUERY_TIMEOUT)
        if response.rcode() != dns.rcode.NOERROR:
            raise ResolveError(f"{self.name}: {dns.rcode.to_text(response.rcode())}")
        records = [r for r in response.answer if r.rdtype == dns.rdatatype.A]
        if not records:
            raise ResolveError(f"{self.name}: no A record")
        ttl = min(r.ttl for r in records)
        addresses = sorted(item.address for r in records for item in r)
        return Answer(addresses, ttl, now + ttl)
