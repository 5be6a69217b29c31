"""Verify dns_record against a real primary (the dns_server role on the witness VM): the name
was created once (first converge), nmpi-failover's move (side effect) survived the second
converge, a forced run moves it back, a deleted name is created again, check mode changes
nothing, and a server that cannot be asked fails the run rather than pass for "no record"."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import pytest

testinfra_hosts = ["all"]

ZONE = "lab.example."
RECORD = "nmpi.lab.example."
PREFERRED = "192.0.2.10"
MOVED_BY_SIDE_EFFECT = "198.51.100.7"
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."))
SCENARIO = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).parent.parent))


@pytest.fixture(scope="module")
def server(host: Any) -> str:
    return str(host.interface("eth0").addresses[0])


@pytest.fixture(scope="module")
def failover_key() -> dns.tsig.Key:
    """nmpi-failover's key, as the scenario generated it (molecule.yml)."""
    password = (EPHEMERAL / "tsig-nmpi-failover").read_text().split()[0]
    return dns.tsig.Key(
        "nmpi-failover.", base64.b64encode(password.encode()).decode(), "hmac-sha256"
    )


def record(server: str) -> tuple[set[str], int | None]:
    """The name's addresses and TTL, as the primary answers them (authoritatively)."""
    query = dns.message.make_query(RECORD, "A")
    query.flags &= ~dns.flags.RD
    response = dns.query.udp(query, server, timeout=5)
    assert response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    assert response.flags & dns.flags.AA
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.A:
            return {str(r) for r in rrset}, rrset.ttl
    return set(), None


def move(server: str, key: dns.tsig.Key, address: str | None) -> None:
    """nmpi-failover's side of things: point the name elsewhere, or (None) delete it."""
    update = dns.update.UpdateMessage(ZONE, keyring=key)
    if address is None:
        update.delete(RECORD, "A")
    else:
        update.replace(RECORD, 30, "A", address)
    assert dns.query.tcp(update, server, timeout=5).rcode() == dns.rcode.NOERROR


def converge(*args: str, **extra_vars: object) -> tuple[int, str, int]:
    """Run the scenario's converge.yml again: (return code, output, tasks changed)."""
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    playbook = Path(sys.executable).parent / "ansible-playbook"
    result = subprocess.run(
        [str(playbook), "-i", str(inventory), str(SCENARIO / "converge.yml"), *args]
        + (["-e", json.dumps(extra_vars)] if extra_vars else []),
        # Plain output to count "changed=" in: molecule forces colour on its children.
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Whitespace collapsed: the YAML result format folds long messages over lines.
    output = " ".join((result.stdout + result.stderr).split())
    changed = sum(int(n) for n in re.findall(r" : ok=\d+ changed=(\d+) ", output))
    return result.returncode, output, changed


def test_failover_move_survived_the_second_converge(server: str) -> None:
    assert record(server)[0] == {MOVED_BY_SIDE_EFFECT}


def test_report_names_the_current_address(server: str) -> None:
    rc, out, changed = converge()
    assert rc == 0, out[-3000:]
    assert changed == 0
    assert f"{RECORD} A {MOVED_BY_SIDE_EFFECT}" in out
    assert "left as is: not the preferred site" in out
    assert record(server)[0] == {MOVED_BY_SIDE_EFFECT}


def test_force_moves_it_to_the_preferred_site(server: str) -> None:
    rc, out, changed = converge(dns_record_force=True)
    assert rc == 0, out[-3000:]
    assert changed == 1
    assert record(server) == ({PREFERRED}, 5)  # dns_record_ttl's default
    # Forced again while it already points there: nothing to do.
    rc, out, changed = converge(dns_record_force=True)
    assert rc == 0, out[-3000:]
    assert changed == 0


def test_check_mode_does_not_create(server: str, failover_key: dns.tsig.Key) -> None:
    move(server, failover_key, None)
    rc, out, changed = converge("--check")
    assert rc == 0, out[-3000:]
    assert changed == 1  # it says it would create the record...
    assert record(server) == (set(), None)  # ...and did not


def test_check_mode_before_the_server_exists(server: str) -> None:
    # A first deploy checked before the witness's server runs: reported, not failed.
    rc, out, changed = converge("--check", dns_record_rfc2136_port=5399)
    assert rc == 0, out[-3000:]
    assert changed == 1
    assert "(no record): to be created" in out


def test_created_when_missing(server: str, failover_key: dns.tsig.Key) -> None:
    move(server, failover_key, None)
    rc, out, changed = converge()
    assert rc == 0, out[-3000:]
    assert changed == 1
    assert "created, pointing at 192.0.2.10" in out
    assert record(server) == ({PREFERRED}, 5)  # dns_record_ttl's default


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"dns_record_rfc2136_port": 5399}, id="no-server-there"),
        pytest.param(
            {"dns_record_tsig_secret": base64.b64encode(secrets.token_bytes(27)).decode()},
            id="bad-secret",
        ),
        pytest.param({"dns_record_tsig_key_name": "nobody."}, id="unknown-key"),
    ],
)
def test_unanswered_question_fails_instead_of_creating(
    server: str, failover_key: dns.tsig.Key, bad: dict[str, object]
) -> None:
    move(server, failover_key, MOVED_BY_SIDE_EFFECT)
    rc, out, _ = converge(**bad)
    assert rc != 0, out[-3000:]
    assert record(server)[0] == {MOVED_BY_SIDE_EFFECT}
