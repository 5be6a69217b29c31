"""The chaos suite's measures (tests/chaos): outage, split brain, verdicts, the stub resolver.

They decide whether a scenario passes, so they are tested on their own, without a lab: the
resolver against a real DNS server on loopback (dnspython answering UDP queries).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rrset
import pytest
from nmpi_lab.chaos.load import longest_gap
from nmpi_lab.chaos.observe import RoleMonitor, Sample
from nmpi_lab.chaos.resolver import CachingResolver, ResolveError
from nmpi_lab.chaos.scenarios import SCENARIOS, Row, table


def test_longest_gap_counts_the_edges_of_the_window() -> None:
    assert longest_gap([], 10.0, 20.0) == 10.0
    assert longest_gap([11.0, 12.0, 19.0], 10.0, 20.0) == 7.0
    # Outside the window: ignored.
    assert longest_gap([1.0, 10.5, 30.0], 10.0, 20.0) == 9.5


def _monitor(samples: dict[str, list[tuple[float, bool | None]]]) -> RoleMonitor:
    monitor = RoleMonitor(list(samples), password_file=None)  # type: ignore[arg-type]
    for member, points in samples.items():
        monitor.samples[member] = [Sample(t, w) for t, w in points]
    return monitor


def test_split_brain_needs_two_fresh_writable_members_at_once() -> None:
    clean = _monitor(
        {
            "castor-db-1": [(0.0, True), (0.5, True), (1.0, False), (1.5, False)],
            "jusuf-db-1": [(0.2, False), (0.7, False), (1.2, True), (1.7, True)],
        }
    )
    assert clean.split_brain() == []
    overlap = _monitor(
        {
            "castor-db-1": [(0.0, True), (0.5, True), (1.0, True)],
            "jusuf-db-1": [(0.2, False), (0.7, True), (1.2, True)],
        }
    )
    assert [t for t, _ in overlap.split_brain()] == [0.7, 1.0, 1.2]
    # A member that stopped answering (frozen) is not "writable" forever after its last sample.
    stale = _monitor(
        {
            "castor-db-1": [(0.0, True)],
            "jusuf-db-1": [(0.1, False), (5.0, True), (5.5, True)],
        }
    )
    assert stale.split_brain() == []


def test_a_clean_row_passes_and_each_problem_is_named() -> None:
    spec = SCENARIOS["flapping"]
    row = Row("flapping", outage=1.0, acknowledged=100, name_at_leader=True, redundancy=2.0)
    assert row.problems(spec) == []
    bad = Row(
        "flapping",
        outage=1.0,
        acknowledged=100,
        missing=2,
        split_brain=1,
        double_claims=3,
        failovers=1,
        dns_changes=2,
        name_at_leader=False,
        redundancy=75.0,
    )
    problems = "\n".join(bad.problems(spec))
    for words in (
        "2 acknowledged jobs missing",
        "two writable primaries",
        "3 jobs handed to two claims",
        "not at the database leader's site",
        "within 60 s",
        "1 failovers, expected 0",
        "2 DNS changes, expected 0",
    ):
        assert words in problems
    assert "FAIL" in table([(bad, bad.problems(spec))])


def test_outage_limit_of_the_standby_site_cut() -> None:
    spec = SCENARIOS["standby-site-cut"]
    row = Row("standby-site-cut", outage=16.5, acknowledged=10, name_at_leader=True, redundancy=5)
    assert row.problems(spec) == ["outage 16.5 s > 15 s"]


class _DnsServer:
    """Answers A queries for one name on loopback UDP with a given address and TTL."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.address = "198.18.81.10"
        self.ttl = 2
        self.silent = False
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            if self.silent:
                continue
            self.queries += 1
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            response.answer.append(
                dns.rrset.from_text(self.name, self.ttl, "IN", "A", self.address)
            )
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def server() -> Iterator[_DnsServer]:
    server = _DnsServer("api.nmpi.lab.example.")
    yield server
    server.close()


def test_resolver_caches_for_the_ttl_then_follows_a_move(server: _DnsServer) -> None:
    resolver = CachingResolver("127.0.0.1", "api.nmpi.lab.example", port=server.port)
    assert resolver.resolve() == ["198.18.81.10"]
    server.address = "198.18.82.10"
    assert resolver.resolve() == ["198.18.81.10"]  # cached: the TTL has not run out
    assert server.queries == 1
    time.sleep(2.1)
    assert resolver.resolve() == ["198.18.82.10"]
    assert server.queries == 2


def test_resolver_serves_stale_only_when_the_server_is_silent(server: _DnsServer) -> None:
    server.ttl = 0
    resolver = CachingResolver("127.0.0.1", "api.nmpi.lab.example", port=server.port)
    assert resolver.resolve() == ["198.18.81.10"]
    server.silent = True
    assert resolver.resolve() == ["198.18.81.10"]
    assert (resolver.stale_answers, resolver.failures) == (1, 1)
    fresh = CachingResolver("127.0.0.1", "api.nmpi.lab.example", port=server.port)
    with pytest.raises(ResolveError, match="did not answer"):
        fresh.resolve()
