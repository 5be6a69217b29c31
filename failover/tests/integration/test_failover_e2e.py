"""nmpi-failover end to end: `nmpi-failover watch` subprocesses against the real lab.

The daemons run exactly as systemd runs them (`nmpi-failover watch -c <config> --instance
<name>`), each with its own config (journal, metrics port) for the lab of this module; the
operator commands run as `nmpi-failover switchover|failback`. The public name is read from
BIND9 directly, the database from PostgreSQL, the jobs through the job-queue API.

One lab serves the whole module, in file order: the planned switchover and failback (which
leave castor leading and jusuf in sync), the refusal, the two daemons, the loss of the castor
site (restored, but jusuf keeps the leader and the name), and last the failure of the
leader site's web tier alone, the case where the daemon itself asks Patroni to switch over.

Timings use a 1 s interval, 3 failed probes to "down" and a 5 s lease (see CONFIG).
"""

from __future__ import annotations

import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from .daemons import Bind, DaemonProcess, Event, poll, run_cli
from .lab import SERVER_NAME, SITES, Lab, wait_until
from .test_lab_ha import Writer, assert_no_committed_row_lost, ids_in

pytestmark = pytest.mark.slow

Timing = Callable[[str, float], None]

INTERVAL = 1.0
PROBE_TIMEOUT = 0.8
FAILURES_TO_DOWN = 3
LEASE_TTL = 5
CONFIG: dict[str, Any] = {
    "interval": INTERVAL,
    "probe_timeout": PROBE_TIMEOUT,
    "failures_to_down": FAILURES_TO_DOWN,
    "etcd": {"lease_ttl": LEASE_TTL},
}
# After a promotion, the job-queue at the surviving site answers /readyz 200 only once one of
# its new connections reaches the new leader. Its multi-host URL lists castor first; the lost
# castor stays silent (packets dropped), and the job-queue gives a silent host 2 s
# (NMPI_DATABASE_CONNECT_TIMEOUT_PER_HOST) before trying jusuf, which it then tries first. A
# pooled connection to castor is given up after its command timeout (10 s) at worst. Measured:
# ready within 0 to 6 s of the promotion (it was 0 to 32 s while asyncpg's one connect timeout
# covered both hosts and a silent castor used all of it).
JOB_QUEUE_RECOVERY = 15.0
SLACK = 10.0  # two shared cores: scheduling, Docker's network changes
# From "the leader's site serves" to BIND's answer: the next round (<= interval), its reads
# (<= probe_timeout), the update; plus scheduling slack.
NAME_FOLLOWS = INTERVAL + PROBE_TIMEOUT + 2.0


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def bind(lab: Lab) -> Bind:
    return Bind(lab)


@pytest.fixture
def daemons(lab: Lab, tmp_path: Path) -> Iterator[Callable[[str], DaemonProcess]]:
    """`daemons(instance)` starts `nmpi-failover watch` with a config of its own; every
    daemon still running at the end is stopped with SIGTERM."""
    started: list[DaemonProcess] = []

    def start(instance: str) -> DaemonProcess:
        path = lab.write_failover_config(
            tmp_path / f"{instance}.yaml", journal=str(tmp_path / f"{instance}.jsonl"), **CONFIG
        )
        started.append(DaemonProcess(path, instance))
        return started[-1]

    yield start
    for daemon in started:
        daemon.terminate()


@pytest.fixture
def table(lab: Lab) -> str:
    name = f"it_e2e_{secrets.token_hex(4)}"
    with psycopg.connect(lab.dsn(), autocommit=True) as connection:
        connection.execute(
            f"CREATE TABLE {name} (id integer PRIMARY KEY, at timestamptz DEFAULT now())"
        )
    return name


def wait_converged(daemon: DaemonProcess, lab: Lab, site: str, timeout: float = 30.0) -> None:
    """The daemon holds the lease, both sites serve, the name is at `site`."""
    address = lab.web[site].address

    def converged() -> bool | None:
        daemon.check_alive()
        ok = (
            daemon.holds_lease()
            and daemon.state("dns") == address
            and daemon.state("site.castor") == "up"
            and daemon.state("site.jusuf") == "up"
        )
        return True if ok else None

    poll(f"{daemon.instance} to converge on {site}", converged, timeout)


def acted_only_while_holding(daemon: DaemonProcess) -> None:
    """Every action in the daemon's journal started while it held the lease."""
    holding = False
    for event in daemon.events():
        if event.get("event") == "state_change" and event.get("what") == "lease":
            holding = str(event.get("to")).startswith("held")
        elif event.get("event") == "action":
            assert holding, f"{daemon.instance} acted without the lease: {event}"


def patronictl(lab: Lab, site: str, *args: str) -> str:
    container = lab.client.containers.get(lab.node(site, "db").container)
    code, output = container.exec_run(
        ["patronictl", "-c", "/var/lib/postgresql/patroni.yml", *args]
    )
    text: str = output.decode(errors="replace")
    assert code == 0, f"patronictl {' '.join(args)} at {site}: {text}"
    return text


def api_token(lab: Lab, site: str, username: str) -> str:
    """A user and a token of the job-queue (its admin CLI, in the site's web container)."""
    container = lab.client.containers.get(lab.node(site, "web").container)
    for command in (["user", "add", username], ["token", "create", username]):
        code, output = container.exec_run(["nmpi-job-queue", *command])
        assert code == 0, f"nmpi-job-queue {' '.join(command)}: {output.decode()}"
    return str(output.decode().strip().splitlines()[-1])


class JobWriter(threading.Thread):
    """Submits jobs through one site's job-queue API over HTTPS, one at a time.

    `acknowledged` holds the ids of jobs answered 201 Created: they are committed and must
    never be lost. Anything else (timeout, 5xx) is counted; such a job may or may not exist.
    """

    def __init__(self, lab: Lab, site: str, token: str, username: str) -> None:
        super().__init__(daemon=True)
        self.url = lab.web[site].probe_url.removesuffix("/readyz") + "/jobs/"
        self.context = ssl.create_default_context(cafile=str(lab.ca_file))
        self.headers = {"Authorization": f"Bearer {token}", "Host": SERVER_NAME}
        self.collab = f"private-{username}"
        self.acknowledged: list[int] = []
        self.failures = 0
        self.last_error = ""
        self._stop_event = threading.Event()

    def run(self) -> None:
        body = {"code": "print('nmpi-it')", "collab": self.collab, "hardware_platform": "Test"}
        with httpx.Client(
            verify=self.context, headers=self.headers, timeout=15.0, trust_env=False
        ) as client:
            while not self._stop_event.is_set():
                try:
                    response = client.post(self.url, json=body)
                except httpx.HTTPError as error:
                    self.failures += 1
                    self.last_error = f"{type(error).__name__}: {error}"
                    time.sleep(0.2)
                    continue
                if response.status_code == 201:
                    self.acknowledged.append(int(response.json()["id"]))
                else:
                    self.failures += 1
                    self.last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                    time.sleep(0.2)
                time.sleep(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def wait_for_acks(self, count: int, timeout: float) -> None:
        target = len(self.acknowledged) + count
        wait_until(
            f"{count} more acknowledged jobs (last error: {self.last_error or 'none'})",
            lambda: True if len(self.acknowledged) >= target else None,
            timeout,
            interval=0.1,
        )


class ReadyWatcher(threading.Thread):
    """Polls a site's /readyz from the host (as the daemon does) every 0.2 s until stopped.

    `ready_since` is when the streak of 200 answers going on at the stop began (None if the
    last answer was not 200): the moment from which the site has served steadily."""

    def __init__(self, lab: Lab, site: str) -> None:
        super().__init__(daemon=True)
        self.lab, self.site = lab, site
        self.answers: list[tuple[float, bool]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            asked = time.time()
            ok = self.lab.web_ready(self.site, timeout=PROBE_TIMEOUT) == 200
            self.answers.append((asked, ok))
            self._stop_event.wait(max(0.0, 0.2 - (time.time() - asked)))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    @property
    def ready_since(self) -> float | None:
        since = None
        for asked, ok in self.answers:
            since = (since or asked) if ok else None
        return since

    @property
    def streaks(self) -> int:
        """How many times the answers turned to 200."""
        oks = [ok for _, ok in self.answers]
        return sum(1 for i, ok in enumerate(oks) if ok and (i == 0 or not oks[i - 1]))


def whole(lab: Lab) -> tuple[str, str] | None:
    """(leader, sync standby) when the cluster has both, as the surviving jusuf member sees
    it (a member back from an isolation may still answer from its stale copy of the DCS)."""
    roles = lab.roles("jusuf")
    leaders = [m for m, (role, state) in roles.items() if (role, state) == ("leader", "running")]
    standbys = [
        m
        for m, (role, state) in roles.items()
        if role == "sync_standby" and state in ("streaming", "running")
    ]
    return (leaders[0], standbys[0]) if len(leaders) == 1 and standbys else None


def diagnosis(lab: Lab) -> str:
    """Each member's own /cluster view and the end of its Patroni log, for a failure report."""
    lines = []
    for site in SITES:
        members = (lab.cluster(site) or {}).get("members", [])
        seen = [(m.get("name"), m.get("role"), m.get("state"), m.get("timeline")) for m in members]
        lines.append(f"{site}'s /cluster: {seen or 'no answer'}")
    for site in SITES:
        lines.append(f"--- {site} db log ---\n{lab.logs(site, 'db', tail=40)}")
    return "\n".join(lines)


def job_ids(dsn: str, username: str) -> set[int]:
    with psycopg.connect(dsn) as connection:
        rows = connection.execute("SELECT id FROM jobs WHERE user_id = %s", (username,))
        return {int(row[0]) for row in rows.fetchall()}


def steps(events: list[Event], names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        (str(e["event"]), str(e.get("to_site") or e.get("site")))
        for e in events
        if e.get("event") in names
    ]


# --- b. planned switchover and failback ---------------------------------------------------------


def test_planned_switchover_and_failback_lose_no_committed_row(
    lab: Lab,
    table: str,
    daemons: Callable[[str], DaemonProcess],
    bind: Bind,
    record_timing: Timing,
) -> None:
    castor, jusuf = lab.web["castor"].address, lab.web["jusuf"].address
    daemon = daemons("nmpi-it-main")
    wait_converged(daemon, lab, "castor")
    writer = Writer(lab.dsn(), table)
    writer.start()
    try:
        writer.wait_for_commits(20, timeout=30)
        started = time.monotonic()
        result = run_cli(daemon.config_path, "switchover", "--to", "jusuf", "--yes")
        record_timing("switchover --to jusuf (command, incl. DNS)", time.monotonic() - started)
        assert result.returncode == 0, result.stdout + result.stderr
        assert bind.answer() == {jusuf}  # the command returns once the name has moved
        assert lab.leader_site() == "jusuf"
        writer.wait_for_commits(20, timeout=60)
        record_timing("castor back in sync", lab.wait_for_sync_standby("castor", timeout=120))
        # failback needs castor to serve (its job-queue reconnects after the demotion).
        ready_from = time.monotonic()
        lab.wait_web_ready("castor", timeout=60)
        record_timing("castor web tier ready again", time.monotonic() - ready_from)

        started = time.monotonic()
        result = run_cli(daemon.config_path, "failback", "--yes")
        record_timing("failback (command, incl. DNS)", time.monotonic() - started)
        assert result.returncode == 0, result.stdout + result.stderr
        assert bind.answer() == {castor}
        assert lab.leader_site() == "castor"
        writer.wait_for_commits(20, timeout=60)
        record_timing("jusuf back in sync", lab.wait_for_sync_standby("jusuf", timeout=120))
    finally:
        writer.stop()
    record_timing("longest write gap", writer.longest_gap)
    print(f"committed {len(writer.committed)} rows, {writer.failures} failed attempts")
    assert_no_committed_row_lost(lab, writer, table)
    assert set(writer.committed) <= ids_in(lab.member_dsn("jusuf"), table)

    # The journal (shared by the daemon and the commands, as in production) has every step.
    journal = daemon.events()
    names = ("switchover_requested", "switchover_done", "dns_pointed", "switchover_refused")
    assert steps(journal, names) == [
        ("switchover_requested", "jusuf"),
        ("switchover_done", "jusuf"),
        ("dns_pointed", "jusuf"),
        ("switchover_requested", "castor"),
        ("switchover_done", "castor"),
        ("dns_pointed", "castor"),
    ]
    requested = [e for e in journal if e["event"] == "switchover_requested"]
    assert [(e["reason"], e["planned"]) for e in requested] == [
        ("planned", True),
        ("failback", True),
    ]
    # The daemon kept watching; it never switched over by itself and acted only as holder.
    assert daemon.actions("switchover") == []
    acted_only_while_holding(daemon)
    assert daemon.state("leader") == "castor-db-1 at castor"
    assert daemon.state("dns") == castor


# --- d. refusal ---------------------------------------------------------------------------------


def test_switchover_to_a_site_out_of_sync_is_refused_and_changes_nothing(
    lab: Lab,
    daemons: Callable[[str], DaemonProcess],
    bind: Bind,
    record_timing: Timing,
) -> None:
    castor = lab.web["castor"].address
    daemon = daemons("nmpi-it-main")
    wait_converged(daemon, lab, "castor")
    # Replication stops: Patroni in maintenance mode (it will not restart PostgreSQL), then
    # jusuf's PostgreSQL is stopped. The leader drops it from the synchronous standbys.
    patronictl(lab, "jusuf", "pause", "--wait")
    try:
        container = lab.client.containers.get(lab.node("jusuf", "db").container)
        code, output = container.exec_run(
            ["pg_ctl", "-D", "/var/lib/postgresql/data/pgdata", "stop", "-m", "fast"]
        )
        assert code == 0, output.decode(errors="replace")
        wait_until(
            "jusuf-db-1 to be a stopped replica",
            lambda: True if lab.roles().get("jusuf-db-1") == ("replica", "stopped") else None,
            timeout=30,
        )
        cluster_before = lab.roles()
        since = time.time()
        started = time.monotonic()
        result = run_cli(daemon.config_path, "switchover", "--to", "jusuf", "--yes")
        record_timing("refusal (command)", time.monotonic() - started)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "refused: jusuf is not in sync (jusuf-db-1 state is 'stopped')" in result.stderr
        # Failing back to the site that already leads is refused as well.
        result = run_cli(daemon.config_path, "failback", "--yes")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "refused: the leader castor-db-1 is already at castor" in result.stderr

        time.sleep(3 * INTERVAL)  # a few daemon rounds over the same situation
        assert lab.roles() == cluster_before  # Patroni untouched
        assert lab.leader_site() == "castor"
        assert bind.answer() == {castor}
        refusals = daemon.events("switchover_refused", since)
        assert [e["reason"] for e in refusals] == [
            "jusuf is not in sync (jusuf-db-1 state is 'stopped')",
            "the leader castor-db-1 is already at castor",
        ]
        assert daemon.events("switchover_requested", since) == []
        assert daemon.actions(since=since) == []
    finally:
        patronictl(lab, "jusuf", "resume", "--wait")  # Patroni starts PostgreSQL again
        record_timing("jusuf back in sync", lab.wait_for_sync_standby("jusuf", timeout=120))


# --- c. two daemons, one lease ------------------------------------------------------------------


def _holder(daemon: DaemonProcess) -> str | None:
    match = re.fullmatch(r"(?:held|not_held) \((.+)\)", daemon.state("lease") or "")
    return match.group(1) if match else None


def test_two_daemons_only_the_lease_holder_acts_and_the_other_takes_over(
    lab: Lab,
    daemons: Callable[[str], DaemonProcess],
    bind: Bind,
    record_timing: Timing,
) -> None:
    castor, jusuf = lab.web["castor"].address, lab.web["jusuf"].address
    first, second = daemons("nmpi-it-a"), daemons("nmpi-it-b")

    def settled() -> tuple[DaemonProcess, DaemonProcess] | None:
        holders = {_holder(first), _holder(second)}
        if len(holders) != 1 or None in holders:
            return None
        acting = [d for d in (first, second) if d.holds_lease()]
        return (acting[0], second if acting[0] is first else first) if len(acting) == 1 else None

    acting, standby = poll("one daemon to hold the lease, seen by both", settled, timeout=30)
    wait_converged(acting, lab, "castor")

    # A stray change of the name: only the holder repairs it.
    since = time.time()
    bind.point(jusuf)
    bind.wait_for(castor, timeout=10)
    assert len(acting.actions("point_dns", since)) == 1
    assert standby.actions() == []
    assert "nmpi_failover_acting_leader 1.0" in acting.metrics()
    assert "nmpi_failover_acting_leader 0.0" in standby.metrics()

    # SIGTERM releases the lease: the standby takes over within a round or two, not a TTL.
    stopped = time.time()
    assert acting.terminate() == 0
    assert acting.events()[-1]["event"] == "stopped"
    taken = standby.wait_state("lease", lambda v: v.startswith("held"), LEASE_TTL + 10, stopped)
    takeover = float(taken["ts"]) - stopped
    record_timing("SIGTERM -> the other instance holds the lease", takeover)
    assert takeover < LEASE_TTL, "the released lease was not taken at once"
    since = time.time()
    bind.point(jusuf)
    bind.wait_for(castor, timeout=10)
    assert len(standby.actions("point_dns", since)) == 1

    # A new instance waits beside the holder; SIGKILL releases nothing: nobody acts (the name
    # stays wrong) until the lease has run out.
    third = daemons("nmpi-it-c")
    third.wait_state("lease", lambda v: v == f"not_held ({standby.instance})", timeout=15)
    killed = time.time()
    standby.kill()
    bind.point(jusuf)
    taken = third.wait_state("lease", lambda v: v.startswith("held"), LEASE_TTL + 10, killed)
    takeover = float(taken["ts"]) - killed
    record_timing("SIGKILL -> the other instance holds the lease", takeover)
    assert LEASE_TTL - INTERVAL - 1.0 <= takeover <= LEASE_TTL + 3 * INTERVAL
    repaired = bind.wait_for(castor, timeout=10)
    assert repaired >= float(taken["ts"])  # nobody touched the name in between
    record_timing("SIGKILL -> the name repaired by the new holder", repaired - killed)
    assert len(third.actions("point_dns", killed)) == 1

    for daemon in (first, second, third):
        acted_only_while_holding(daemon)
    assert sum(len(d.actions()) for d in (first, second, third)) == 3
    assert all(not d.actions("switchover") for d in (first, second, third))


# --- a. losing the castor site (last: the lab is left led from jusuf) ---------------------------


def test_losing_castor_moves_the_name_to_jusuf_without_losing_acknowledged_writes(
    lab: Lab,
    table: str,
    daemons: Callable[[str], DaemonProcess],
    bind: Bind,
    record_timing: Timing,
) -> None:
    assert lab.leader_site() == "castor"
    jusuf = lab.web["jusuf"].address
    daemon = daemons("nmpi-it-main")
    wait_converged(daemon, lab, "castor")

    patroni = lab.patroni_config()
    # Patroni promotes jusuf once castor's leader key expires: ttl after castor's last
    # renewal (<= loop_wait before the loss), noticed within one more loop_wait.
    promotion = float(patroni["ttl"]) + 2 * float(patroni["loop_wait"])
    # failures_to_down x interval + Patroni's promotion + the API's recovery + a round + slack
    bound = FAILURES_TO_DOWN * INTERVAL + promotion + JOB_QUEUE_RECOVERY + INTERVAL + SLACK
    print(f"bound for the name to reach jusuf: {bound:.0f} s")

    username = f"nmpi-it-{secrets.token_hex(3)}"
    jobs = JobWriter(lab, "jusuf", api_token(lab, "jusuf", username), username)
    rows = Writer(lab.dsn(), table)
    jobs.start()
    rows.start()
    try:
        jobs.wait_for_acks(10, timeout=30)
        rows.wait_for_commits(20, timeout=30)
        killed = time.time()
        lab.kill_site("castor", "isolate")
        serving = ReadyWatcher(lab, "jusuf")  # jusuf's /readyz as the test sees it
        serving.start()
        try:
            moved = bind.wait_for(jusuf, timeout=bound + 30)
            # The name moves ahead of Patroni's promotion when jusuf's API answers (503) within
            # the probe timeout and its member is the synchronous standby, else once jusuf
            # leads and serves: either way, wait for both before judging.
            leads = daemon.wait_state(
                "leader", lambda v: v == "jusuf-db-1 at jusuf", bound + 30, killed
            )
            poll(
                "jusuf's /readyz to answer 200",
                lambda: True if lab.web_ready("jusuf", timeout=PROBE_TIMEOUT) == 200 else None,
                JOB_QUEUE_RECOVERY + SLACK,
            )
        finally:
            serving.stop()
        record_timing("castor isolated -> BIND answers jusuf", moved - killed)

        down = daemon.wait_state("site.castor", lambda v: v == "down", 5, killed)
        leads_at = float(leads["ts"])
        (action,) = daemon.actions("point_dns", killed)
        ahead = "ahead of the promotion" in str(action.get("reason"))
        print(f"the name moved {'ahead of' if ahead else 'after'} Patroni's promotion")
        if ahead:
            record_timing("BIND answers jusuf -> daemon: leader at jusuf", leads_at - moved)
            assert moved < leads_at + NAME_FOLLOWS
        ready_since = serving.ready_since
        assert ready_since is not None, "jusuf's /readyz did not answer 200 steadily"
        record_timing("castor isolated -> daemon: castor down", float(down["ts"]) - killed)
        record_timing("castor isolated -> daemon: leader at jusuf", leads_at - killed)
        record_timing("castor isolated -> jusuf /readyz 200 steadily", ready_since - killed)
        print(f"jusuf /readyz turned 200 {serving.streaks} times before the name moved")
        record_timing("castor isolated -> PointDns decision", float(action["ts"]) - killed)
        record_timing("PointDns decision -> BIND answers", moved - float(action["ts"]))
        asked = daemon.actions("switchover", killed)
        print(
            "the leader moved by "
            + ("the daemon's request to Patroni" if asked else "Patroni's own failover")
            + f"; alarms: {sorted({str(e.get('condition')) for e in daemon.events('decision')})}"
        )
        # Patroni's part, as the daemon saw it (its rounds are INTERVAL apart).
        assert leads_at - killed <= promotion + INTERVAL + SLACK
        # The daemon's part: the name follows within a round once jusuf leads and serves.
        assert moved - max(leads_at, ready_since) <= NAME_FOLLOWS
        assert moved - killed <= bound

        jobs.wait_for_acks(10, timeout=60)
        rows.wait_for_commits(20, timeout=60)
        record_timing("castor isolated -> writes through jusuf's API again", time.time() - killed)
    except BaseException:
        lab.restore_site("castor")  # leave the lab whole for the next test
        raise
    finally:
        jobs.stop()
        rows.stop()
    print(
        f"{len(jobs.acknowledged)} jobs acknowledged ({jobs.failures} failed attempts), "
        f"{len(rows.committed)} rows committed ({rows.failures} failed attempts)"
    )
    # Nothing acknowledged is missing on the new leader.
    assert set(jobs.acknowledged) <= job_ids(lab.member_dsn("jusuf"), username)
    assert set(rows.committed) <= ids_in(lab.member_dsn("jusuf"), table)
    assert_no_committed_row_lost(lab, rows, table)

    # Castor comes back: it rejoins as the sync standby, and the name stays at jusuf.
    restored = time.time()
    lab.restore_site("castor")
    try:
        lab.wait_etcd_healthy(timeout=60)
        leader, _ = wait_until("a leader with a sync standby", lambda: whole(lab), timeout=120)
        record_timing("castor restored -> a leader with a sync standby", time.time() - restored)
        # Nothing acknowledged is missing on whichever member leads now.
        on_leader = lab.member_dsn(str(lab.site_of_member(leader)))
        lost_rows = sorted(set(rows.committed) - ids_in(on_leader, table))
        lost_jobs = sorted(set(jobs.acknowledged) - job_ids(on_leader, username))
        assert (lost_rows, lost_jobs) == ([], []), (
            f"{len(lost_rows)} rows and {len(lost_jobs)} jobs acknowledged at jusuf are missing "
            f"on the leader {leader} after castor's return (e.g. {lost_rows[:5]}, {lost_jobs[:5]})"
        )
        assert leader == "jusuf-db-1", (
            f"Patroni made {leader} the leader on castor's return, nobody asked for a failback"
        )
        up = daemon.wait_state("site.castor", lambda v: v == "up", 90, restored)
        record_timing("castor restored -> daemon: castor serves", float(up["ts"]) - restored)
        time.sleep(3 * INTERVAL)  # rounds with both sites up
        assert bind.answer() == {jusuf}  # never an automatic failback
        assert daemon.actions(since=restored) == []
        assert whole(lab) == ("jusuf-db-1", "castor-db-1")
    except BaseException:
        print(diagnosis(lab))
        raise
    assert set(rows.committed) <= ids_in(lab.member_dsn("castor"), table)
    assert set(jobs.acknowledged) <= job_ids(lab.member_dsn("castor"), username)
    acted_only_while_holding(daemon)


# --- e. the leader site's web tier fails alone: the daemon switches over ----------------------


def test_web_tier_failing_at_the_leaders_site_makes_the_daemon_switch_over(
    lab: Lab,
    table: str,
    daemons: Callable[[str], DaemonProcess],
    bind: Bind,
    record_timing: Timing,
) -> None:
    """The leader's database is fine but its site no longer serves: the other site serves
    (its API reaches the leader over the wan), so the daemon moves the name there first, then,
    that site being in sync, asks Patroni to move the leader there (unplanned: POST
    /failover)."""
    here = wait_until("a Patroni leader", lab.leader_site, timeout=90)
    there = "castor" if here == "jusuf" else "jusuf"
    lab.wait_for_sync_standby(there, timeout=120)
    lab.wait_web_ready(there, timeout=60)
    daemon = daemons("nmpi-it-main")
    wait_converged(daemon, lab, here)
    patroni = lab.patroni_config()
    promotion = float(patroni["ttl"]) + 2 * float(patroni["loop_wait"])
    # The name: failures_to_down x interval + a round's reads + slack. The leader: a round
    # later + the switchover (Patroni's promotion at most) + slack; the APIs recover at once:
    # a demotion closes their connections.
    name_bound = FAILURES_TO_DOWN * INTERVAL + PROBE_TIMEOUT + SLACK
    bound = FAILURES_TO_DOWN * INTERVAL + promotion + INTERVAL + SLACK
    rows = Writer(lab.dsn(), table)
    rows.start()
    web = lab.node(here, "web").container
    try:
        rows.wait_for_commits(20, timeout=30)
        failed = time.time()
        lab.client.api.pause(web)  # hangs: TLS handshakes and requests never answered
        moved = bind.wait_for(lab.web[there].address, timeout=bound + 30)
        record_timing(f"{here} web tier paused -> BIND answers {there}", moved - failed)
        # The name first; the switchover follows in a later round, once the name is there.
        leads = daemon.wait_state(
            "leader", lambda v: v.endswith(f" at {there}"), bound + 30, failed
        )
        (switch,) = daemon.actions("switchover", failed)
        done = daemon.events("action_done", float(switch["ts"]))[0]
        (point,) = daemon.actions("point_dns", failed)
        record_timing(f"{here} web tier paused -> PointDns decision", point["ts"] - failed)
        record_timing(f"{here} web tier paused -> Switchover decision", switch["ts"] - failed)
        record_timing("Switchover requested -> leader arrived", done["ts"] - switch["ts"])
        record_timing("PointDns decision -> BIND answers", moved - float(point["ts"]))
        assert float(point["ts"]) < float(switch["ts"])
        assert point["site"] == there
        assert (switch["from_site"], switch["to_site"]) == (here, there)
        assert (switch["reason"], switch["planned"]) == ("leader_site_down", False)
        assert done["kind"] == "switchover"
        assert float(leads["ts"]) - failed <= bound
        assert lab.leader_site() == there
        assert moved - failed <= name_bound
        rows.wait_for_commits(20, timeout=60)
    finally:
        lab.client.api.unpause(web)
        rows.stop()
    assert_no_committed_row_lost(lab, rows, table)
    record_timing("longest write gap", rows.longest_gap)

    # The paused site serves again: it stays the standby, the name stays.
    back = time.time()
    daemon.wait_state(f"site.{here}", lambda v: v == "up", 60, back)
    record_timing(f"{here} in sync again", lab.wait_for_sync_standby(here, timeout=120))
    time.sleep(3 * INTERVAL)
    assert bind.answer() == {lab.web[there].address}
    assert daemon.actions(since=back) == []
    assert set(rows.committed) <= ids_in(lab.member_dsn(here), table)
    acted_only_while_holding(daemon)
