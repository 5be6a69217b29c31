"""Verify dns_server on the converged witness VM: authoritative answers from the seeded zone,
signed updates allowed exactly as the update-policy grants them, nothing else (unsigned
updates, other names, other keys, zone transfers, recursion), and the record moved by the
side effect (nmpi-failover's update) kept across the idempotence run and a restart."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
import dns.zone
import pytest
from nmpi_failover.adapters.dns_rfc2136 import build_update

testinfra_hosts = ["all"]

ZONE = "lab.example."
RECORD = "nmpi.lab.example."
CONTAINER = "nmpi-dns-server"
KEYS = "/etc/nmpi/dns_server/tsig.keys"
MOVED_BY_SIDE_EFFECT = "198.51.100.7"


@pytest.fixture(scope="module")
def server(host: Any) -> str:
    """The VM's address: the tests ask from the controller, over the network, as clients do."""
    return str(host.interface("eth0").addresses[0])


@pytest.fixture(scope="module")
def keys(host: Any) -> dict[str, dns.tsig.Key]:
    text = host.file(KEYS).content_string
    found = re.findall(r'key "([^"]+)" \{\s*algorithm ([\w-]+);\s*secret "([^"]+)";', text)
    return {name: dns.tsig.Key(name, secret, algorithm) for name, algorithm, secret in found}


def query(server: str, name: str, rdtype: str, *, recurse: bool = False) -> dns.message.Message:
    message = dns.message.make_query(name, rdtype)
    if not recurse:
        message.flags &= ~dns.flags.RD
    return dns.query.udp(message, server, timeout=5)


def addresses(server: str, name: str = RECORD) -> set[str]:
    response = query(server, name, "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA, "not an authoritative answer"
    return {str(rdata) for rrset in response.answer for rdata in rrset}


def send(server: str, update: dns.update.UpdateMessage) -> str:
    return dns.rcode.to_text(dns.query.tcp(update, server, timeout=5).rcode())


def wait_for(server: str, expected: set[str], seconds: float = 30) -> set[str]:
    deadline = time.monotonic() + seconds
    while True:
        try:
            response = query(server, RECORD, "A")
        except dns.exception.DNSException:
            response = None
        seen = set()
        # A restarted server answers SERVFAIL until it has loaded the zone: not yet, not wrong.
        if response is not None and response.rcode() == dns.rcode.NOERROR:
            seen = {str(rdata) for rrset in response.answer for rdata in rrset}
        if seen == expected or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def test_moved_record_survived_the_second_converge(server: str) -> None:
    # side_effect moved it (as nmpi-failover would); idempotence re-ran the role since.
    assert addresses(server) == {MOVED_BY_SIDE_EFFECT}


def test_zone_file_kept_its_dynamic_content(host: Any) -> None:
    # rndc sync in side_effect folded the journal into the file; the role left it alone.
    zone = host.file("/srv/nmpi/dns_server/lab.example.zone")
    assert MOVED_BY_SIDE_EFFECT in zone.content_string
    assert zone.uid == 100


def test_container_confined_on_host_network(host: Any) -> None:
    info = json.loads(host.check_output(f"docker inspect {CONTAINER}"))[0]
    assert info["State"]["Running"]
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in info["HostConfig"]["SecurityOpt"]
    # named dropped root for the image's bind user after binding port 53.
    status = host.check_output(f"docker exec {CONTAINER} cat /proc/1/status")
    assert re.search(r"^Uid:\s+100\s", status, re.M), status


def test_healthy(host: Any) -> None:
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        state = host.check_output(f"docker inspect -f '{{{{.State.Health.Status}}}}' {CONTAINER}")
        if state == "healthy":
            break
        time.sleep(2)
    assert state == "healthy"


def test_secret_files_are_not_world_readable(host: Any) -> None:
    for path in (KEYS, "/etc/nmpi/dns_server/rndc.key", "/etc/nmpi/dns_server/named.conf"):
        f = host.file(path)
        assert f.user == "root"
        assert f.gid == 101
        assert f.mode == 0o640, path
    assert host.file("/etc/nmpi/dns_server").mode == 0o750


def test_seeded_records_answer(server: str, host: Any) -> None:
    vm = str(host.interface("eth0").addresses[0])
    ns = query(server, "ns.lab.example.", "A")
    assert [str(r) for rrset in ns.answer for r in rrset] == [vm]
    cname = query(server, "www.lab.example.", "CNAME")
    assert [str(r) for rrset in cname.answer for r in rrset] == [RECORD]
    txt = query(server, ZONE, "TXT")
    assert [str(r) for rrset in txt.answer for r in rrset] == ['"nmpi lab zone"']
    soa = query(server, ZONE, "SOA")
    assert soa.flags & dns.flags.AA
    assert str(soa.answer[0][0].mname) == "ns.lab.example."


def test_listens_on_loopback_too(host: Any) -> None:
    out = host.check_output(f"docker exec {CONTAINER} dig +short +norec @127.0.0.1 {RECORD} A")
    assert out.strip() == MOVED_BY_SIDE_EFFECT


def test_failover_key_moves_the_record_like_nmpi_failover(
    server: str, keys: dict[str, dns.tsig.Key]
) -> None:
    # The exact compare-and-swap update nmpi-failover sends (prerequisites, delete A and AAAA,
    # add): with `grant ... A` alone BIND would refuse it for the AAAA deletion.
    current = addresses(server)
    update = build_update(ZONE, RECORD, "203.0.113.5", current, 30, keys["nmpi-failover."])
    assert send(server, update) == "NOERROR"
    assert wait_for(server, {"203.0.113.5"}) == {"203.0.113.5"}
    # A stale expectation (someone else moved it) is refused by the prerequisites.
    stale = build_update(ZONE, RECORD, "203.0.113.9", current, 30, keys["nmpi-failover."])
    assert send(server, stale) == "NXRRSET"


def test_unsigned_update_is_refused(server: str) -> None:
    update = dns.update.UpdateMessage(ZONE)
    update.replace("nmpi", 30, "A", "203.0.113.66")
    assert send(server, update) == "REFUSED"
    assert addresses(server) != {"203.0.113.66"}


def test_failover_key_cannot_touch_another_name(server: str, keys: dict[str, dns.tsig.Key]) -> None:
    for name, rdtype, value in (("www", "A", "203.0.113.67"), ("ns", "A", "203.0.113.67")):
        update = dns.update.UpdateMessage(ZONE, keyring=keys["nmpi-failover."])
        update.replace(name, 30, rdtype, value)
        assert send(server, update) == "REFUSED", name
    # Nor another type of its own name.
    update = dns.update.UpdateMessage(ZONE, keyring=keys["nmpi-failover."])
    update.add("nmpi", 30, "TXT", '"hijack"')
    assert send(server, update) == "REFUSED"


def test_other_key_only_changes_its_own_grant(server: str, keys: dict[str, dns.tsig.Key]) -> None:
    update = dns.update.UpdateMessage(ZONE, keyring=keys["other."])
    update.replace("nmpi", 30, "A", "203.0.113.68")
    assert send(server, update) == "REFUSED"
    update = dns.update.UpdateMessage(ZONE, keyring=keys["other."])
    update.replace("other", 30, "TXT", '"allowed"')
    assert send(server, update) == "NOERROR"


def test_wrong_secret_is_refused(server: str) -> None:
    forged = dns.tsig.Key("nmpi-failover.", "Zm9yZ2VkIHNlY3JldCBmb3JnZWQgc2VjcmV0", "hmac-sha256")
    update = dns.update.UpdateMessage(ZONE, keyring=forged)
    update.replace("nmpi", 30, "A", "203.0.113.69")
    with pytest.raises(dns.tsig.PeerBadSignature):
        send(server, update)


def test_zone_transfer_is_refused(server: str) -> None:
    with pytest.raises(dns.xfr.TransferError):
        dns.zone.from_xfr(dns.query.xfr(server, ZONE, timeout=5, lifetime=10))


def test_no_recursion(server: str) -> None:
    response = query(server, "example.com.", "A", recurse=True)
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & dns.flags.RA


def test_updates_survive_a_restart(host: Any, server: str, keys: dict[str, dns.tsig.Key]) -> None:
    current = addresses(server)
    update = build_update(ZONE, RECORD, "203.0.113.77", current, 30, keys["nmpi-failover."])
    assert send(server, update) == "NOERROR"
    host.check_output(f"docker restart {CONTAINER}")
    assert wait_for(server, {"203.0.113.77"}, 60) == {"203.0.113.77"}
    assert host.file("/srv/nmpi/dns_server/lab.example.zone.jnl").exists
