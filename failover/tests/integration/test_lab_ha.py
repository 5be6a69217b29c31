"""The lab itself: Patroni keeps every committed row across a switchover and a lost site, BIND9
takes TSIG-signed updates only, and etcd needs two of its three members.

These prove the ground the nmpi-failover end-to-end tests stand on. The tests share one lab
(module scope) and run in file order: each leaves the database led from some site with the
other in sync, except the last (etcd quorum), which runs last on purpose.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import threading
import time
from collections.abc import Callable

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import psycopg
import pytest
from nmpi_failover.config import load_config

from .lab import RECORD, SITES, TSIG_KEY_NAME, ZONE, Lab, LabError, wait_until

pytestmark = pytest.mark.slow

Timing = Callable[[str, float], None]


class Writer(threading.Thread):
    """Inserts numbered rows through the multi-host DSN, one autocommit INSERT at a time.

    `committed` holds the ids whose INSERT returned success: those rows are committed and must
    never be lost. A failed attempt (no leader reachable, read-only member, connection lost) is
    counted and retried on a new connection; its row may or may not exist (in doubt).
    """

    def __init__(self, dsn: str, table: str, pause: float = 0.05, first_id: int = 1) -> None:
        super().__init__(daemon=True)
        self.dsn, self.table, self.pause = dsn, table, pause
        self.first_id = first_id  # two writers on one table use disjoint ids
        self.committed: list[int] = []
        self.failures = 0
        self.last_error = ""
        self.longest_gap = 0.0  # seconds without a successful commit
        self._stop_event = threading.Event()
        self._last_success = time.monotonic()

    def run(self) -> None:
        connection: psycopg.Connection[tuple[object, ...]] | None = None
        next_id = self.first_id - 1
        while not self._stop_event.is_set():
            try:
                if connection is None:
                    connection = psycopg.connect(self.dsn, autocommit=True)
                next_id += 1
                connection.execute(f"INSERT INTO {self.table} (id) VALUES (%s)", (next_id,))
                self.committed.append(next_id)
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - self._last_success)
                self._last_success = now
            except psycopg.Error as error:
                self.failures += 1
                self.last_error = f"{type(error).__name__}: {error}".strip()
                if connection is not None:
                    connection.close()
                    connection = None
                time.sleep(0.2)
            time.sleep(self.pause)
        if connection is not None:
            connection.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)
        self.longest_gap = max(self.longest_gap, time.monotonic() - self._last_success)

    def wait_for_commits(self, count: int, timeout: float) -> None:
        target = len(self.committed) + count
        wait_until(
            f"{count} more commits (last error: {self.last_error or 'none'})",
            lambda: True if len(self.committed) >= target else None,
            timeout,
            interval=0.1,
        )


def ids_in(dsn: str, table: str) -> set[int]:
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(f"SELECT id FROM {table}").fetchall()
    return {int(row[0]) for row in rows}


@pytest.fixture
def table(lab: Lab) -> str:
    name = f"it_rows_{secrets.token_hex(4)}"
    with psycopg.connect(lab.dsn(), autocommit=True) as connection:
        connection.execute(
            f"CREATE TABLE {name} (id integer PRIMARY KEY, at timestamptz DEFAULT now())"
        )
    return name


def assert_no_committed_row_lost(lab: Lab, writer: Writer, table: str) -> None:
    present = ids_in(lab.dsn(), table)
    lost = sorted(set(writer.committed) - present)
    assert not lost, f"{len(lost)} committed rows lost, e.g. {lost[:10]}"


# --- the lab as started ---------------------------------------------------------------------


def test_castor_leads_and_jusuf_is_the_sync_standby(lab: Lab, record_timing: Timing) -> None:
    record_timing("lab up", lab.timings.phases["total"])
    assert lab.leader_site() == "castor"
    roles = lab.roles()
    assert roles["castor-db-1"] == ("leader", "running")
    assert roles["jusuf-db-1"][0] == "sync_standby"
    assert roles["jusuf-db-1"][1] in ("running", "streaming")  # "streaming" from Patroni 3.0.3
    config = lab.patroni_config()
    assert config["synchronous_mode"] is True
    assert config.get("synchronous_mode_strict", False) is False
    assert config["postgresql"]["use_pg_rewind"] is True
    # Both sites' web tiers reach the leader through the multi-host DSN, over TLS.
    assert {site: lab.web_ready(site) for site in SITES} == {"castor": 200, "jusuf": 200}


def test_failover_config_for_the_lab_is_valid(lab: Lab, failover_config: object) -> None:
    config = load_config(str(failover_config))
    assert config.site("castor").patroni_urls == [lab.patroni_urls["castor"]]
    assert config.site_of_member("jusuf-db-1") == "jusuf"
    assert config.dns.rfc2136 is not None
    assert config.dns.rfc2136.server == lab.bind_address[0]
    assert config.etcd.endpoints == lab.etcd_endpoints


def test_three_etcd_members_are_healthy(lab: Lab) -> None:
    assert lab.etcd_members() == ["castor", "jusuf", "witness"]
    assert all(lab.etcd_health(site) for site in ("castor", "jusuf", "witness"))


# --- DNS ------------------------------------------------------------------------------------


def _a_record(lab: Lab, name: str) -> set[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), lab.bind_address[0], timeout=3)
    return {item.to_text() for rrset in reply.answer for item in rrset}


def test_bind9_takes_tsig_signed_updates_only(lab: Lab) -> None:
    assert _a_record(lab, RECORD) == {lab.web["castor"].address}  # the lab's starting point
    secret = lab.tsig_secret_file.read_text().strip()
    keyring = dns.tsigkeyring.from_text({TSIG_KEY_NAME: secret})
    name = f"it-{secrets.token_hex(3)}"

    signed = dns.update.UpdateMessage(ZONE, keyring=keyring, keyalgorithm=dns.tsig.HMAC_SHA256)
    signed.replace(name, 30, "A", "192.0.2.77")
    reply = dns.query.tcp(signed, lab.bind_address[0], timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR
    assert _a_record(lab, f"{name}.{ZONE}") == {"192.0.2.77"}

    unsigned = dns.update.UpdateMessage(ZONE)
    unsigned.replace(name, 30, "A", "192.0.2.78")
    reply = dns.query.tcp(unsigned, lab.bind_address[0], timeout=5)
    assert reply.rcode() == dns.rcode.REFUSED

    wrong = dns.tsigkeyring.from_text(
        {TSIG_KEY_NAME: base64.b64encode(secrets.token_bytes(32)).decode()}
    )
    forged = dns.update.UpdateMessage(ZONE, keyring=wrong, keyalgorithm=dns.tsig.HMAC_SHA256)
    forged.replace(name, 30, "A", "192.0.2.79")
    try:
        reply = dns.query.tcp(forged, lab.bind_address[0], timeout=5)
    except dns.tsig.PeerError:
        pass  # the server answered BADSIG: refused
    else:
        assert reply.rcode() != dns.rcode.NOERROR
    assert _a_record(lab, f"{name}.{ZONE}") == {"192.0.2.77"}


# --- Patroni --------------------------------------------------------------------------------


def test_switchover_to_jusuf_and_back_loses_no_committed_row(
    lab: Lab, table: str, record_timing: Timing
) -> None:
    writer = Writer(lab.dsn(), table)
    writer.start()
    try:
        writer.wait_for_commits(20, timeout=30)
        record_timing("switchover castor -> jusuf", lab.switchover("jusuf"))
        writer.wait_for_commits(20, timeout=60)
        record_timing("castor back in sync", lab.wait_for_sync_standby("castor", timeout=90))
        record_timing("switchover jusuf -> castor", lab.switchover("castor"))
        writer.wait_for_commits(20, timeout=60)
        record_timing("jusuf back in sync", lab.wait_for_sync_standby("jusuf", timeout=90))
    finally:
        writer.stop()
    record_timing("longest write gap", writer.longest_gap)
    print(f"committed {len(writer.committed)} rows, {writer.failures} failed attempts")
    assert_no_committed_row_lost(lab, writer, table)
    # The sync standby has them too (it confirmed every commit before the client saw it).
    replica = ids_in(lab.member_dsn("jusuf"), table)
    assert set(writer.committed) <= replica


def test_losing_castor_promotes_jusuf_and_writes_go_on(
    lab: Lab, table: str, record_timing: Timing
) -> None:
    assert lab.leader_site() == "castor"
    writer = Writer(lab.dsn(), table)
    writer.start()
    try:
        writer.wait_for_commits(20, timeout=30)
        before = len(writer.committed)
        killed_at = time.monotonic()
        lab.kill_site("castor", "isolate")
        record_timing("castor isolated -> jusuf leads", lab.wait_for_leader("jusuf", timeout=90))
        writer.wait_for_commits(20, timeout=60)
        record_timing("castor isolated -> writes committed again", time.monotonic() - killed_at)
        assert len(writer.committed) > before
        assert lab.web_ready("castor", timeout=2) is None  # gone with its site
        # jusuf's web tier reaches the new leader. (The job-queue API needs a few seconds more:
        # a pooled connection to the vanished castor member is given up after its command
        # timeout, and a new one waits 2 s for the silent castor before trying jusuf.)
        lab.wait_web_ready("jusuf", timeout=120)
        record_timing(
            f"castor isolated -> jusuf {lab.web_kind} ready", time.monotonic() - killed_at
        )
    finally:
        writer.stop()
    assert_no_committed_row_lost(lab, writer, table)
    print(f"committed {len(writer.committed)} rows, {writer.failures} failed attempts")

    # Castor comes back as a replica of jusuf (pg_rewind if its timeline diverged).
    restored_at = time.monotonic()
    lab.restore_site("castor")
    lab.wait_etcd_healthy(timeout=60)
    record_timing("castor restored -> sync standby", lab.wait_for_sync_standby("castor", 120))
    print(f"castor rejoined {time.monotonic() - restored_at:.1f}s after its restore")
    assert lab.leader_site() == "jusuf"  # failback is never automatic
    assert set(writer.committed) <= ids_in(lab.member_dsn("castor"), table)


def _writable(lab: Lab, site: str) -> bool | None:
    """Whether `site`'s PostgreSQL takes writes now; None when it does not answer."""
    try:
        with psycopg.connect(lab.member_dsn(site), connect_timeout=2) as connection:
            row = connection.execute("SELECT NOT pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return None
    return bool(row and row[0])


def test_healing_a_partition_leaves_one_writable_primary(
    lab: Lab, table: str, record_timing: Timing
) -> None:
    """The leader's site loses the wan only (its members stay reachable from here, so both
    PostgreSQL servers are watched throughout): the old primary demotes itself, the other site
    is promoted, and after the heal the old primary rejoins as a standby; at no sample may both
    members take writes. (Patroni 3.0.2 passed this too: its leader-key overwrite needs an old
    leader that still believes it leads, as in the next test.)"""
    old = lab.leader_site()
    assert old is not None
    new = next(site for site in SITES if site != old)
    both: list[float] = []  # seconds since the partition at which both members took writes
    started = time.monotonic()

    def watch(seconds: float, until: Callable[[], bool] | None = None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if _writable(lab, "castor") and _writable(lab, "jusuf"):
                both.append(time.monotonic() - started)
            if until is not None and until():
                return
            time.sleep(0.3)

    def role_seen_from_new(site: str) -> str:
        # The partitioned member answers /cluster from its stale copy of the DCS: ask the other.
        return lab.roles(new).get(lab.db_members[site], ("", ""))[0]

    writer = Writer(lab.dsn(), table)
    writer.start()
    try:
        writer.wait_for_commits(20, timeout=30)
        lab.kill_site(old, "partition")
        watch(90, until=lambda: role_seen_from_new(new) == "leader" and _writable(lab, new) is True)
        record_timing(f"{old} partitioned -> {new} leads", time.monotonic() - started)
        assert role_seen_from_new(new) == "leader"
        watch(5)  # the partitioned side stays demoted
        assert _writable(lab, old) is not True
        healed = time.monotonic()
        lab.restore_site(old)
        # After the heal: the old primary rejoins as the sync standby, the new one keeps leading.
        watch(120, until=lambda: role_seen_from_new(old) == "sync_standby")
        record_timing(f"partition healed -> {old} sync standby", time.monotonic() - healed)
        watch(10)
        writer.wait_for_commits(20, timeout=60)
    finally:
        writer.stop()
        lab.restore_site(old)  # no-op when restored above
    assert both == [], f"two writable primaries at {both}"
    assert lab.leader_site() == new
    # Every member's own view agrees on one leader.
    for site in SITES:
        leaders = [m for m, (role, _) in lab.roles(site).items() if role == "leader"]
        assert leaders == [lab.db_members[new]], (site, leaders)
    assert _writable(lab, old) is False
    assert_no_committed_row_lost(lab, writer, table)
    lab.wait_etcd_healthy(timeout=60)


def test_a_primary_frozen_past_its_promotion_does_not_take_the_leader_back(
    lab: Lab, table: str, record_timing: Timing
) -> None:
    """The leader's Patroni+PostgreSQL freeze (`docker pause`: a hung host) until the other
    site has been promoted, then thaw. The thawed Patroni must find that it lost the leader key
    and follow. Patroni 3.0.2 (Debian bookworm's) wrote its etcd3 leader key over the new
    leader's with a fresh lease (fixed in 3.0.3, patroni/patroni#2689): here it did not follow
    in 2 of 3 runs, holding the leader key again while the promoted member was demoted."""
    old = lab.leader_site()
    assert old is not None
    new = next(site for site in SITES if site != old)
    leaders_after_thaw: set[str] = set()
    before = Writer(lab.dsn(), table)  # its connection to the frozen leader hangs until the thaw
    after = Writer(lab.dsn(), table, first_id=1_000_000)  # connects to the new leader
    before.start()
    try:
        before.wait_for_commits(20, timeout=30)
        frozen = time.monotonic()
        lab.pause(old, "db")
        try:
            lab.wait_for_leader(new, timeout=90)
            record_timing(f"{old} frozen -> {new} leads", time.monotonic() - frozen)
            after.start()
            after.wait_for_commits(20, timeout=60)  # what a stolen leader key would lose
        finally:
            lab.unpause(old, "db")
        thawed = time.monotonic()

        def rejoined() -> bool | None:
            roles = lab.roles(new)
            leaders_after_thaw.update(m for m, (role, _) in roles.items() if role == "leader")
            member = roles.get(lab.db_members[old], ("", ""))
            return True if member[0] == "sync_standby" else None

        try:
            wait_until(f"{old} to follow {new}", rejoined, timeout=120, interval=0.3)
        except LabError as error:
            views = {site: lab.roles(site) for site in SITES}
            raise LabError(f"{error}; leaders seen {leaders_after_thaw}; views {views}") from None
        record_timing(f"{old} thawed -> sync standby", time.monotonic() - thawed)
        after.wait_for_commits(20, timeout=60)
        before.wait_for_commits(5, timeout=60)  # back, through the new leader
    finally:
        after.stop()
        before.stop()
        with contextlib.suppress(Exception):
            lab.unpause(old, "db")
    assert leaders_after_thaw == {lab.db_members[new]}
    assert lab.leader_site() == new
    assert_no_committed_row_lost(lab, before, table)
    assert_no_committed_row_lost(lab, after, table)


# --- etcd quorum (last: it disturbs Patroni) ------------------------------------------------


def test_etcd_needs_two_of_three_members(lab: Lab, record_timing: Timing) -> None:
    assert lab.etcd_put("witness", "/nmpi-it/probe", "before")
    lost_at = time.monotonic()
    lab.pause("castor", "etcd")
    lab.pause("jusuf", "etcd")
    try:
        wait_until(
            "the witness to lose quorum",
            lambda: True if not lab.etcd_health("witness") else None,
            timeout=30,
        )
        record_timing("two etcd members paused -> witness unhealthy", time.monotonic() - lost_at)
        assert not lab.etcd_put("witness", "/nmpi-it/probe", "without-quorum", timeout=3)
    finally:
        lab.unpause("castor", "etcd")
        lab.unpause("jusuf", "etcd")
    back_at = time.monotonic()
    lab.wait_etcd_healthy(timeout=60)
    assert lab.etcd_put("witness", "/nmpi-it/probe", "after")
    record_timing("members back -> quorum", time.monotonic() - back_at)
    # Patroni finds its DCS again and some member leads.
    wait_until("a Patroni leader", lambda: lab.leader_site(), timeout=90)
