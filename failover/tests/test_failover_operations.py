"""The planned switchover's waiting, in process: fake adapters, a fake clock and a sleep
that only advances it, so a 60 s wait takes no time.

The situation the chaos suite found on the lab (Patroni 4.1.5, synchronous mode): right
after a role change the old primary rejoins as a plain replica, and the new leader names it
its synchronous standby only at its next loop; until then Patroni refuses a switchover to it
(HTTP 412 "candidate name does not match with sync_standby"). `failback` waits for it, and
retries that refusal, within --wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from failover_testkit import CASTOR_IP, JUSUF_IP, Replica, cluster, make_config
from nmpi_failover.config import SiteConfig
from nmpi_failover.daemon import Adapters
from nmpi_failover.decide import Switchover
from nmpi_failover.journal import Journal, read_tail
from nmpi_failover.model import (
    ClusterState,
    DnsRecord,
    LeaseState,
    LeaseStatus,
    MemberRole,
    SiteProbe,
)
from nmpi_failover.operations import DEFAULT_WAIT, planned_switchover
from nmpi_failover.ports import ActuatorError, PatroniRefusedError

CONFIG = make_config()
NOT_SYNC = "candidate name does not match with sync_standby"

# After a switchover to jusuf: castor's old primary, back as a replica, then named.
REJOINED = replace(
    cluster("jusuf", Replica(role=MemberRole.REPLICA, state="streaming", lag=0)),
    synchronous_mode=True,
)
STARTING = replace(
    cluster("jusuf", Replica(role=MemberRole.REPLICA, state="starting", lag=None)),
    synchronous_mode=True,
)
NAMED = replace(cluster("jusuf"), synchronous_mode=True)  # castor-db-1 is the sync standby


T0 = 1000.0  # the fake clock's start; Lab.states are timed from it


@dataclass
class FakeClock:
    now: float = T0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


@dataclass
class Lab:
    """Patroni, DNS, probes and the lease as the command sees them, on a fake clock.

    `states` are /cluster readings as (seconds after T0, state): each read returns the last
    one whose time has come. `refusals` are what Patroni answers the next POSTs with."""

    clock: FakeClock
    states: list[tuple[float, ClusterState]]
    refusals: list[ActuatorError] = field(default_factory=list)
    castor_ok: bool = True
    posts: list[Switchover] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    record: frozenset[str] = frozenset({JUSUF_IP})

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.now += seconds

    async def probe(self, site: SiteConfig, url: str | None = None) -> SiteProbe:
        ok = self.castor_ok or site.name != "castor"
        if ok:
            return SiteProbe(ok=True, latency=0.01, status_code=200)
        return SiteProbe(ok=False, latency=0.01, error="HTTP 503", status_code=503)

    async def read_cluster(self) -> ClusterState | None:
        current = [s for t, s in self.states if T0 + t <= self.clock.now]
        return current[-1] if current else None

    async def switchover(self, action: Switchover) -> None:
        self.posts.append(action)
        if self.refusals:
            raise self.refusals.pop(0)
        self.states.append((self.clock.now - T0, cluster("castor")))

    async def read(self) -> DnsRecord | None:
        return DnsRecord("nmpi.lab.example.", self.record)

    async def point(self, address: str, expected_current: frozenset[str]) -> None:
        assert expected_current == self.record
        self.record = frozenset({address})

    async def refresh(self) -> LeaseState:
        return LeaseState(LeaseStatus.NOT_HELD, holder="witness-1")

    async def peek(self) -> LeaseState:
        return await self.refresh()

    async def release(self) -> None:
        return None


@dataclass
class Run:
    code: int
    out: list[str]
    err: list[str]
    events: list[dict[str, object]]


def lab(
    states: Sequence[tuple[float, ClusterState]],
    *,
    refusals: Sequence[ActuatorError] = (),
    castor_ok: bool = True,
) -> Lab:
    return Lab(FakeClock(), list(states), list(refusals), castor_ok)


def failback(
    tmp_path: Path, world: Lab, wait: float = DEFAULT_WAIT, *, confirm_takes: float = 0.0
) -> Run:
    out: list[str] = []
    err: list[str] = []

    def confirm(plan: Switchover) -> bool:
        world.clock.now += confirm_takes  # an operator thinking it over
        return True

    adapters = Adapters(world, world, world, world, world)
    journal = Journal(tmp_path / "journal.jsonl")
    try:
        code = asyncio.run(
            planned_switchover(
                CONFIG,
                adapters,
                "castor",
                reason="failback",
                journal=journal,
                confirm=confirm,
                say=out.append,
                warn=err.append,
                wait=wait,
                clock=world.clock,
                sleep=world.sleep,
            )
        )
    finally:
        journal.close()
    return Run(code, out, err, read_tail(tmp_path / "journal.jsonl", 100))


def test_failback_waits_for_the_old_primary_to_become_the_synchronous_standby(
    tmp_path: Path,
) -> None:
    world = lab([(0, STARTING), (3, REJOINED), (6.5, NAMED)])
    run = failback(tmp_path, world)
    assert run.code == 0, run.err
    assert run.out[0] == (
        "waiting up to 60 s for castor-db-1 to become the synchronous standby "
        "(replica, starting, lag unknown)"
    )
    assert run.out[1] == (
        "waiting for castor-db-1 to become the synchronous standby "
        "(replica, streaming, lag 0) ... 3 s"
    )
    assert run.out[2].startswith("plan: switch the database leader from jusuf-db-1 (jusuf) to ")
    assert run.out[-1].startswith(f"nmpi.lab.example. now points at {CASTOR_IP} (castor)")
    assert world.sleeps == [1.0] * 7  # re-observed every second until it was named
    assert [p.candidate for p in world.posts] == ["castor-db-1"]  # asked once, when ready
    assert world.record == frozenset({CASTOR_IP})
    events = [e["event"] for e in run.events]
    assert events == ["switchover_requested", "switchover_done", "dns_pointed"]
    assert run.events[0]["waited"] == 7.0


def test_a_long_wait_says_where_it_is_every_few_seconds(tmp_path: Path) -> None:
    world = lab([(0, REJOINED), (12, NAMED)])
    run = failback(tmp_path, world)
    assert run.code == 0, run.err
    waiting = [line for line in run.out if line.startswith("waiting")]
    assert [line.rsplit(" ... ", 1)[-1] for line in waiting[1:]] == ["5 s", "10 s"]


def test_the_bound_passes_and_the_refusal_names_the_members_state(tmp_path: Path) -> None:
    world = lab([(0, REJOINED)])
    run = failback(tmp_path, world, wait=10)
    assert run.code == 1
    assert world.posts == []  # Patroni was never asked
    assert sum(world.sleeps) == pytest.approx(10)
    assert run.err == [
        "refused: castor-db-1 at castor is not the synchronous standby (replica, streaming, "
        "lag 0); in synchronous mode Patroni switches over only to its synchronous standby, "
        "which the leader names among its streaming replicas at its next loop; still so after "
        "waiting 10 s. Retry, or check `nmpi-failover status`"
    ]
    [event] = run.events
    assert event["event"] == "switchover_refused"
    assert event["wait_for"] == (
        "castor-db-1 to become the synchronous standby (replica, streaming, lag 0)"
    )
    assert event["waited"] == 10.0


def test_wait_0_refuses_at_once(tmp_path: Path) -> None:
    world = lab([(0, REJOINED), (1, NAMED)])
    run = failback(tmp_path, world, wait=0)
    assert run.code == 1
    assert world.sleeps == []
    assert world.posts == []
    assert run.out == []
    assert len(run.err) == 1
    assert run.err[0].startswith(
        "refused: castor-db-1 at castor is not the synchronous standby (replica, streaming, lag 0)"
    )
    assert run.err[0].endswith(
        "Retry in a few seconds, or let the command wait for it (--wait SECONDS); "
        "`nmpi-failover status` shows the members"
    )


def test_a_refusal_waiting_cannot_end_is_not_waited_for(tmp_path: Path) -> None:
    world = lab([(0, REJOINED)], castor_ok=False)
    run = failback(tmp_path, world)
    assert run.code == 1
    assert world.sleeps == []
    assert run.err == ["refused: castor does not serve healthy (HTTP 503)"]


def test_waiting_stops_when_a_refusal_waiting_cannot_end_comes_up(tmp_path: Path) -> None:
    # While waiting, the leader moves to castor by other means: nothing left to do.
    world = lab([(0, REJOINED), (2, replace(cluster("castor"), synchronous_mode=True))])
    run = failback(tmp_path, world)
    assert run.code == 1
    assert world.sleeps == [1.0, 1.0]
    assert run.err == ["refused: the leader castor-db-1 is already at castor"]


def test_patronis_refusal_for_the_sync_standby_is_retried_within_the_bound(
    tmp_path: Path,
) -> None:
    # /cluster (one member's copy of the DCS) shows castor-db-1 named; the member taking the
    # POST has not seen the /sync key change yet and refuses, twice.
    refused = PatroniRefusedError("/switchover", 412, NOT_SYNC)
    world = lab([(0, NAMED)], refusals=[refused, refused])
    run = failback(tmp_path, world)
    assert run.code == 0, run.err
    assert len(world.posts) == 3
    assert world.sleeps == [1.0, 1.0]
    assert (
        run.out[2]
        == "waiting up to 60 s for Patroni to take castor-db-1 as its synchronous standby"
    )
    assert [e["event"] for e in run.events] == [
        "switchover_requested",
        "switchover_done",
        "dns_pointed",
    ]


def test_patronis_refusal_is_retried_when_the_config_was_unread(tmp_path: Path) -> None:
    # /config unanswered and no member shows a synchronous role: judged asynchronous, so the
    # replica is asked for at once; Patroni's 412 is then waited out the same way.
    unknown = replace(REJOINED, synchronous_mode=None)
    refused = PatroniRefusedError("/switchover", 412, NOT_SYNC)
    world = lab([(0, unknown)], refusals=[refused] * 4)
    run = failback(tmp_path, world)
    assert run.code == 0, run.err
    assert len(world.posts) == 5


def test_patronis_refusal_fails_once_the_bound_has_passed(tmp_path: Path) -> None:
    refused = PatroniRefusedError("/switchover", 412, NOT_SYNC)
    world = lab([(0, NAMED)], refusals=[refused] * 100)
    run = failback(tmp_path, world, wait=5)
    assert run.code == 1
    assert len(world.posts) == 6  # at 0, 1, 2, 3, 4 and 5 s
    assert run.err == [
        "failed: Patroni refused /switchover (HTTP 412): candidate name does not match with "
        "sync_standby (still so after waiting 5 s: retry, or check `nmpi-failover status`)"
    ]
    assert [e["event"] for e in run.events] == ["switchover_requested", "switchover_failed"]


def test_patronis_refusal_with_wait_0_fails_at_once_with_a_hint(tmp_path: Path) -> None:
    refused = PatroniRefusedError("/switchover", 412, NOT_SYNC)
    world = lab([(0, NAMED)], refusals=[refused])
    run = failback(tmp_path, world, wait=0)
    assert run.code == 1
    assert len(world.posts) == 1
    assert run.err[0].endswith(
        "(the leader names its synchronous standby at its next loop: retry in a few seconds, "
        "or let the command wait for it (--wait SECONDS))"
    )


def test_the_confirmation_question_does_not_use_up_the_bound(tmp_path: Path) -> None:
    refused = PatroniRefusedError("/switchover", 412, NOT_SYNC)
    world = lab([(0, NAMED)], refusals=[refused])
    run = failback(tmp_path, world, wait=5, confirm_takes=30)
    assert run.code == 0, run.err
    assert len(world.posts) == 2


@pytest.mark.parametrize(
    "error",
    [
        PatroniRefusedError("/switchover", 412, "leader name does not match"),
        ActuatorError("patroni", "no Patroni took /switchover: connect refused"),
    ],
)
def test_other_failures_are_not_retried(tmp_path: Path, error: ActuatorError) -> None:
    world = lab([(0, NAMED)], refusals=[error])
    run = failback(tmp_path, world)
    assert run.code == 1
    assert len(world.posts) == 1
    assert world.sleeps == []
    assert run.err == [f"failed: {error}"]


def test_the_cli_default_is_the_operations_default() -> None:
    from nmpi_failover import cli

    assert cli.DEFAULT_WAIT == DEFAULT_WAIT
