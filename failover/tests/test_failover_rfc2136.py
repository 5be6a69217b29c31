"""The RFC 2136 adapter against a real BIND9 on loopback: reads, TSIG, compare-and-swap."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import dns.query
import dns.tsig
import dns.update
import pytest
from failover_services import (
    CASTOR_IP,
    JUSUF_IP,
    KEY_NAME,
    RECORD,
    ZONE,
    Bind,
    bind,  # noqa: F401 - fixture
    free_port,
    write_config,
)
from nmpi_failover.adapters.dns_rfc2136 import Rfc2136Dns, build_update
from nmpi_failover.config import load_config
from nmpi_failover.ports import ActuatorError, DnsConflictError

UNUSED = ("https://127.0.0.1:1/readyz", "https://127.0.0.1:1/readyz")


def adapter(tmp_path: Path, port: int, secret_file: Path | None) -> Rfc2136Dns:
    path = write_config(
        tmp_path / "config",
        probe_urls=UNUSED,
        patroni_urls=(["http://127.0.0.1:1"], ["http://127.0.0.1:1"]),
        etcd_urls=["http://127.0.0.1:1"],
        dns_port=port,
        secret_file=secret_file,
    )
    return Rfc2136Dns(load_config(path))


@pytest.fixture
def dns_adapter(tmp_path: Path, bind: Bind) -> Rfc2136Dns:  # noqa: F811
    return adapter(tmp_path, bind.port, bind.secret_file)


def test_reads_the_record_from_the_authority(dns_adapter: Rfc2136Dns) -> None:
    record = asyncio.run(dns_adapter.read())
    assert record is not None
    assert record.name == RECORD
    assert record.addresses == frozenset({CASTOR_IP})
    assert record.ttl == 30


def test_a_good_compare_and_swap_is_applied(dns_adapter: Rfc2136Dns, bind: Bind) -> None:  # noqa: F811
    asyncio.run(dns_adapter.point(JUSUF_IP, frozenset({CASTOR_IP})))
    assert bind.query() == {JUSUF_IP}
    record = asyncio.run(dns_adapter.read())
    assert record is not None
    assert record.addresses == frozenset({JUSUF_IP})
    assert record.ttl == 30  # dns.ttl from the config


def test_a_wrong_prerequisite_is_refused_and_the_record_unchanged(
    dns_adapter: Rfc2136Dns,
    bind: Bind,  # noqa: F811
) -> None:
    with pytest.raises(DnsConflictError, match="NXRRSET"):
        asyncio.run(dns_adapter.point(JUSUF_IP, frozenset({"203.0.113.7"})))
    assert bind.query() == {CASTOR_IP}


def test_expecting_no_record_when_there_is_one_is_a_conflict(
    dns_adapter: Rfc2136Dns,
    bind: Bind,  # noqa: F811
) -> None:
    with pytest.raises(DnsConflictError, match="YXRRSET"):
        asyncio.run(dns_adapter.point(JUSUF_IP, frozenset()))
    assert bind.query() == {CASTOR_IP}


def test_a_wrong_tsig_key_is_refused(tmp_path: Path, bind: Bind) -> None:  # noqa: F811
    wrong = tmp_path / "wrong.key"
    wrong.write_text(base64.b64encode(os.urandom(32)).decode())
    wrong.chmod(0o600)
    dns_adapter = adapter(tmp_path, bind.port, wrong)
    with pytest.raises(ActuatorError) as raised:
        asyncio.run(dns_adapter.point(JUSUF_IP, frozenset({CASTOR_IP})))
    assert not isinstance(raised.value, DnsConflictError)
    assert raised.value.actuator == "dns"
    assert "rejected the TSIG key" in str(raised.value)
    assert bind.query() == {CASTOR_IP}


def test_from_no_record_to_one_and_across_address_families(
    dns_adapter: Rfc2136Dns,
    bind: Bind,  # noqa: F811
) -> None:
    # Remove the record with the real key, so the name has no address at all.
    key = dns.tsig.Key(KEY_NAME, bind.secret, "hmac-sha256")
    removal = dns.update.UpdateMessage(ZONE, keyring=key)
    removal.delete(RECORD, "A")
    dns.query.tcp(removal, "127.0.0.1", port=bind.port, timeout=2)
    record = asyncio.run(dns_adapter.read())
    assert record is not None
    assert record.addresses == frozenset()

    asyncio.run(dns_adapter.point(CASTOR_IP, frozenset()))  # "RRset does not exist" holds
    assert bind.query() == {CASTOR_IP}

    asyncio.run(dns_adapter.point("2001:db8::10", frozenset({CASTOR_IP})))
    assert bind.query("A") == set()
    assert bind.query("AAAA") == {"2001:db8::10"}
    record = asyncio.run(dns_adapter.read())
    assert record is not None
    assert record.addresses == frozenset({"2001:db8::10"})


def test_an_unreachable_server_is_unreadable_and_updates_fail_in_time(tmp_path: Path) -> None:
    dns_adapter = adapter(tmp_path, free_port(), None)
    assert asyncio.run(dns_adapter.read()) is None
    start = time.monotonic()
    with pytest.raises(ActuatorError):
        asyncio.run(dns_adapter.point(JUSUF_IP, frozenset({CASTOR_IP})))
    assert time.monotonic() - start < dns_adapter.timeout + 1


def test_the_update_states_every_prerequisite() -> None:
    update = build_update(ZONE, RECORD, JUSUF_IP, {CASTOR_IP}, 30, None)
    text = update.to_text()
    prerequisites = [str(rrset) for rrset in update.prerequisite]
    # value-dependent A (class IN, TTL 0), and "no AAAA RRset" (class NONE)
    assert prerequisites == [f"{RECORD} 0 IN A {CASTOR_IP}", f"{RECORD} NONE AAAA"]
    assert f"{RECORD} 30 IN A {JUSUF_IP}" in text
