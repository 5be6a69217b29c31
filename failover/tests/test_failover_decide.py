"""The decision logic, driven round by round on a fake clock against a fake world.

The scenario table runs the whole observe -> decide -> act loop: the fake world applies each
decision the way Patroni and DNS would (the leader moves some rounds after a switchover is
asked for, or by Patroni's own failover at a given round; DNS changes only if the
compare-and-swap prerequisite holds), so "exactly one switch" is checked over many rounds,
not one call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest
from failover_testkit import (
    ADDRESS,
    BASE,
    CASTOR_IP,
    IN_SYNC,
    INTERVAL,
    JUSUF_IP,
    LAGGING,
    MEMBER,
    Replica,
    cluster,
    etcd_view,
    held,
    make_config,
    observation,
    probe,
)
from nmpi_failover.config import Config
from nmpi_failover.decide import (
    Alarm,
    Decision,
    Memory,
    MoveEtcdLeader,
    MoveFloatingIp,
    NoAction,
    PendingSwitchover,
    PointDns,
    Refusal,
    Switchover,
    decide,
    is_action,
    patroni_refusal,
    plan_failback,
    plan_switchover,
    switchover_candidate,
    synchronous_mode,
    to_event,
)
from nmpi_failover.health import SiteStatus
from nmpi_failover.model import (
    ClusterState,
    DnsRecord,
    EtcdLeaderView,
    FloatingIpState,
    LeaseState,
    LeaseStatus,
    Member,
    MemberRole,
    Observation,
    SiteProbe,
)

CONFIG = make_config()
READ_TIME = 0.3  # how long a round takes to read everything before deciding


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeWorld:
    """Patroni and the DNS server as the controller sees them, reacting to its actions."""

    def __init__(
        self,
        leader: str,
        dns: str,
        replica: Replica,
        promote_after: int,
        promotes_at: int | None = None,
    ) -> None:
        self.leader, self.dns, self.replica = leader, dns, replica
        self.promote_after = promote_after
        self.promotes_at = promotes_at
        self.rounds = 0
        self._promoting: tuple[str, int] | None = None

    def observe(self, now: float, castor: str, jusuf: str, lease: LeaseState) -> Observation:
        """`castor`, `jusuf`: "+" the probe gets 200, "5" HTTP 503, "-" no answer."""
        if self.rounds == self.promotes_at:  # the lost leader's key expired: Patroni promotes
            self._promoting = ("jusuf" if self.leader == "castor" else "castor", 1)
        self.rounds += 1
        if self._promoting is not None:
            target, rounds_left = self._promoting
            if rounds_left <= 1:
                self.leader, self._promoting = target, None
                self.replica = IN_SYNC  # the old leader rejoins (pg_rewind) as sync standby
            else:
                self._promoting = (target, rounds_left - 1)
        return observation(
            now,
            castor=castor == "+",
            jusuf=jusuf == "+",
            castor_status=503 if castor == "5" else None,
            jusuf_status=503 if jusuf == "5" else None,
            leader=self.leader,
            replica=self.replica,
            dns=self.dns,
            lease=lease,
        )

    def act(self, decision: Decision) -> None:
        if isinstance(decision, Switchover):
            self._promoting = (decision.to_site, self.promote_after)
        elif isinstance(decision, PointDns):
            # The compare-and-swap: the update only applies over the value the decision saw.
            assert decision.expected_current == frozenset({ADDRESS[self.dns]})
            self.dns = decision.site


def lease_for(code: str, now: float) -> LeaseState:
    return {
        "H": held(now),
        "L": LeaseState(LeaseStatus.NOT_HELD, holder="witness-2"),
        "E": LeaseState(LeaseStatus.ETCD_UNREACHABLE),
    }[code]


@dataclass(frozen=True)
class Scenario:
    name: str
    castor: str  # one character per round: + probe ok, 5 HTTP 503, - no answer
    jusuf: str
    switchovers: int
    actions: int  # every decision that changes something, switchovers included
    final_dns: str
    final_leader: str
    leader: str = "castor"
    dns: str = "castor"
    replica: Replica = IN_SYNC
    lease: str | None = None  # per round: H held, L lost to another instance, E etcd gone
    promote_after: int = 1  # rounds Patroni takes to promote
    promotes_at: int | None = None  # the round Patroni fails over by itself (key expiry)
    alarm: str | None = None  # an alarm condition that must have been raised


SCENARIOS = [
    Scenario(
        "blip shorter than the threshold",
        castor="++--++++++",
        jusuf="++++++++++",
        switchovers=0,
        actions=0,
        final_dns="castor",
        final_leader="castor",
    ),
    Scenario(
        "sustained leader-site failure",
        castor="++------------",
        jusuf="++++++++++++++",
        switchovers=1,
        actions=2,
        final_dns="jusuf",
        final_leader="jusuf",
    ),
    Scenario(
        "sustained failure with a slow Patroni promotion",
        castor="++------------",
        jusuf="++++++++++++++",
        promote_after=4,
        switchovers=1,
        actions=2,
        final_dns="jusuf",
        final_leader="jusuf",
    ),
    Scenario(
        "both sites down",
        castor="++--------",
        jusuf="++--------",
        switchovers=0,
        actions=0,
        final_dns="castor",
        final_leader="castor",
        alarm="both_sites_down",
    ),
    Scenario(
        "healthy castor with the leader at jusuf stays at jusuf",
        castor="++++++++++",
        jusuf="++++++++++",
        leader="jusuf",
        dns="jusuf",
        switchovers=0,
        actions=0,
        final_dns="jusuf",
        final_leader="jusuf",
    ),
    Scenario(
        "castor recovers after a failover: no automatic failback",
        castor="++------++++++++",
        jusuf="++++++++++++++++",
        switchovers=1,
        actions=2,
        final_dns="jusuf",
        final_leader="jusuf",
    ),
    Scenario(
        "leader at jusuf and jusuf fails: switch to castor",
        castor="++++++++++",
        jusuf="++--------",
        leader="jusuf",
        dns="jusuf",
        switchovers=1,
        actions=2,
        final_dns="castor",
        final_leader="castor",
    ),
    Scenario(
        "a lost lease stops actions",
        castor="++--------",
        jusuf="++++++++++",
        lease="HHLLLLLLLL",
        switchovers=0,
        actions=0,
        final_dns="castor",
        final_leader="castor",
    ),
    Scenario(
        "lost etcd quorum stops actions",
        castor="++--------",
        jusuf="++++++++++",
        lease="HHEEEEEEEE",
        switchovers=0,
        actions=0,
        final_dns="castor",
        final_leader="castor",
        alarm="etcd_unreachable",
    ),
    Scenario(
        "regaining the lease resumes acting",
        castor="++----------",
        jusuf="++++++++++++",
        lease="HHLLLHHHHHHH",
        switchovers=1,
        actions=2,
        final_dns="jusuf",
        final_leader="jusuf",
    ),
    # jusuf serves (its API writes to castor's leader over the wan): the name moves there
    # whether or not the database can follow.
    Scenario(
        "a lagging replica blocks the switchover, not the name",
        castor="++--------",
        jusuf="++++++++++",
        replica=LAGGING,
        switchovers=0,
        actions=1,
        final_dns="jusuf",
        final_leader="castor",
        alarm="replica_not_in_sync",
    ),
    Scenario(
        "a stopped replica blocks the switchover, not the name",
        castor="++--------",
        jusuf="++++++++++",
        replica=Replica(state="stopped"),
        switchovers=0,
        actions=1,
        final_dns="jusuf",
        final_leader="castor",
        alarm="replica_not_in_sync",
    ),
    Scenario(
        "a replica on an old timeline blocks the switchover, not the name",
        castor="++--------",
        jusuf="++++++++++",
        replica=Replica(timeline=6),
        switchovers=0,
        actions=1,
        final_dns="jusuf",
        final_leader="castor",
        alarm="replica_not_in_sync",
    ),
    # castor cut off: jusuf's API answers 503 (no writable database) until Patroni promotes
    # jusuf's synchronous standby when castor's leader key expires (round 10 here).
    Scenario(
        "castor cut off: the name moves ahead of Patroni's promotion",
        castor="++--------------",
        jusuf="++55555555++++++",
        promotes_at=10,
        switchovers=0,
        actions=1,
        final_dns="jusuf",
        final_leader="jusuf",
        alarm="both_sites_down",
    ),
    Scenario(
        "castor cut off, jusuf's member async: the name waits for the promotion",
        castor="++--------------",
        jusuf="++55555555++++++",
        replica=Replica(role=MemberRole.REPLICA, lag=0),
        promotes_at=10,
        switchovers=0,
        actions=1,
        final_dns="jusuf",
        final_leader="jusuf",
        alarm="both_sites_down",
    ),
    Scenario(
        "castor cut off and jusuf silent too: nothing moves before the promotion",
        castor="++--------------",
        jusuf="++--------++++++",
        promotes_at=10,
        switchovers=0,
        actions=1,
        final_dns="jusuf",
        final_leader="jusuf",
        alarm="both_sites_down",
    ),
    Scenario(
        "castor back before any promotion: the name returns to the leader",
        castor="++------++++",
        jusuf="++555555++++",
        switchovers=0,
        actions=2,
        final_dns="castor",
        final_leader="castor",
    ),
    # The chaos suite's "flapping": 3 s cuts of castor (two failed probes 2 s apart), jusuf
    # answering 503 meanwhile, must not change the name once.
    Scenario(
        "a flapping castor with jusuf answering 503 moves nothing",
        castor="++--+--+--+--+--++",
        jusuf="++55+55+55+55+55++",
        switchovers=0,
        actions=0,
        final_dns="castor",
        final_leader="castor",
    ),
    Scenario(
        "a flapping castor with jusuf serving moves nothing",
        castor="++--+--+--+--+--++",
        jusuf="++++++++++++++++++",
        switchovers=0,
        actions=0,
        final_dns="castor",
        final_leader="castor",
    ),
]


def run(scenario: Scenario, config: Config = CONFIG) -> tuple[list[Decision], FakeWorld]:
    clock = FakeClock()
    world = FakeWorld(
        scenario.leader,
        scenario.dns,
        scenario.replica,
        scenario.promote_after,
        scenario.promotes_at,
    )
    memory = Memory.start(config)
    leases = scenario.lease or "H" * len(scenario.castor)
    decisions: list[Decision] = []
    for castor, jusuf, lease in zip(scenario.castor, scenario.jusuf, leases, strict=True):
        clock.advance(INTERVAL)
        obs = world.observe(clock.now, castor, jusuf, lease_for(lease, clock.now))
        memory = memory.observe(obs)
        clock.advance(READ_TIME)
        decision = decide(obs, memory, config, clock.now)
        world.act(decision)
        memory = memory.acted(decision, clock.now)
        decisions.append(decision)
    return decisions, world


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario) -> None:
    decisions, world = run(scenario)
    switchovers = [d for d in decisions if isinstance(d, Switchover)]
    assert len(switchovers) == scenario.switchovers, decisions
    assert sum(is_action(d) for d in decisions) == scenario.actions, decisions
    assert world.dns == scenario.final_dns
    assert world.leader == scenario.final_leader
    if scenario.alarm:
        assert scenario.alarm in {d.condition for d in decisions if isinstance(d, Alarm)}
    # Converged at the end: the last round changes nothing.
    assert not is_action(decisions[-1])


def scenario(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name == name)


def test_the_name_moves_on_the_nth_consecutive_failure_then_the_leader() -> None:
    decisions, _ = run(scenario("sustained leader-site failure"))
    first = next(i for i, d in enumerate(decisions) if is_action(d))
    assert first == 2 + CONFIG.failures_to_down - 1  # two good rounds, then N failures
    point = decisions[first]
    assert isinstance(point, PointDns)
    assert (point.site, point.address) == ("jusuf", JUSUF_IP)
    assert "first" in point.reason
    # The next round, the name at jusuf: Patroni is asked to move the leader there.
    switch = decisions[first + 1]
    assert isinstance(switch, Switchover)
    assert (switch.from_site, switch.to_site) == ("castor", "jusuf")
    assert (switch.leader, switch.candidate) == (MEMBER["castor"], MEMBER["jusuf"])
    assert switch.reason == "leader_site_down"
    assert not switch.planned
    # The round after: the leader arrived where the name already is.
    assert isinstance(decisions[first + 2], NoAction)
    assert "converged" in decisions[first + 2].reason


def test_failures_to_down_comes_from_the_config() -> None:
    config = make_config(failures_to_down=5)
    decisions, _ = run(scenario("sustained leader-site failure"), config)
    first = next(i for i, d in enumerate(decisions) if is_action(d))
    assert isinstance(decisions[first], PointDns)
    assert first == 2 + 5 - 1


def test_a_cut_off_leader_site_has_the_name_moved_ahead_of_the_promotion() -> None:
    cut = scenario("castor cut off: the name moves ahead of Patroni's promotion")
    decisions, _ = run(cut)
    (moved,) = [(i, d) for i, d in enumerate(decisions) if is_action(d)]
    index, point = moved
    assert isinstance(point, PointDns)
    assert point.site == "jusuf"
    assert "ahead of the promotion" in point.reason
    assert index == 2 + CONFIG.failures_to_down - 1  # as soon as castor is down
    assert cut.promotes_at is not None
    assert index < cut.promotes_at
    # Waiting for the promotion: the alarm stays, saying the name is already at jusuf.
    waiting = decisions[index + 1]
    assert isinstance(waiting, Alarm)
    assert "already at jusuf" in waiting.reason
    # Without a synchronous standby at jusuf the name only follows the promotion.
    decisions, _ = run(
        scenario("castor cut off, jusuf's member async: the name waits for the promotion")
    )
    (late,) = [i for i, d in enumerate(decisions) if is_action(d)]
    assert late >= cut.promotes_at


# --- single rounds -------------------------------------------------------------------------

T = 5000.0


def history(castor: str = "", jusuf: str = "", config: Config = CONFIG) -> Memory:
    """Memory after earlier rounds with these probe results, the last ending before T."""
    memory = Memory.start(config)
    rounds = max(len(castor), len(jusuf))
    for i in range(rounds):
        c = castor[i] == "+" if i < len(castor) else True
        j = jusuf[i] == "+" if i < len(jusuf) else True
        memory = memory.observe(observation(T - (rounds - i) * INTERVAL, castor=c, jusuf=j))
    return memory


def one_round(obs: Observation, memory: Memory | None = None, age: float = READ_TIME) -> Decision:
    memory = (memory if memory is not None else Memory.start(CONFIG)).observe(obs)
    return decide(obs, memory, CONFIG, obs.taken_at + age)


CASTOR_DOWN = "++--"  # with this round's failure: three in a row


def test_stale_observation_is_not_acted_on() -> None:
    obs = observation(T, dns="jusuf")  # would need a DNS move
    decision = one_round(obs, age=CONFIG.observation_max_age + 0.1)
    assert isinstance(decision, NoAction)
    assert "stale" in decision.reason


def test_observation_one_interval_old_is_still_acted_on() -> None:
    assert isinstance(one_round(observation(T, dns="jusuf"), age=INTERVAL), PointDns)


def test_observation_whose_reads_took_the_round_deadline_is_still_acted_on() -> None:
    # CI saw it: a probe timing out at the deadline on a loaded machine left the round's own
    # observation 2.0 s old, and the "stale" gate then refused a failback.
    age = CONFIG.round_deadline + INTERVAL - 0.05
    assert isinstance(one_round(observation(T, dns="jusuf"), age=age), PointDns)


def test_stale_observation_blocks_a_switchover_too() -> None:
    obs = observation(T, castor=False)
    decision = one_round(obs, history(CASTOR_DOWN), age=INTERVAL * 3)
    assert isinstance(decision, NoAction)


def test_observation_from_the_future_is_not_acted_on() -> None:
    decision = one_round(observation(T, dns="jusuf"), age=-1.0)
    assert isinstance(decision, NoAction)
    assert "future" in decision.reason


def test_dns_already_right_changes_nothing() -> None:
    decision = one_round(observation(T, dns="castor"))
    assert isinstance(decision, NoAction)
    assert "converged" in decision.reason


def test_dns_wrong_while_leader_site_healthy_points_it_with_compare_and_swap() -> None:
    decision = one_round(observation(T, dns="jusuf"))
    assert isinstance(decision, PointDns)
    assert (decision.site, decision.address) == ("castor", CASTOR_IP)
    assert decision.expected_current == frozenset({JUSUF_IP})  # the value observed


def test_missing_dns_record_is_created_with_an_empty_prerequisite() -> None:
    obs = observation(T)
    obs = Observation(
        obs.taken_at,
        obs.probes,
        obs.cluster,
        DnsRecord("nmpi.lab.example.", frozenset()),
        obs.lease,
    )
    decision = one_round(obs)
    assert isinstance(decision, PointDns)
    assert decision.expected_current == frozenset()


def test_dns_with_extra_addresses_is_replaced() -> None:
    obs = observation(T)
    both = DnsRecord("nmpi.lab.example.", frozenset({CASTOR_IP, JUSUF_IP}))
    obs = Observation(obs.taken_at, obs.probes, obs.cluster, both, obs.lease)
    decision = one_round(obs)
    assert isinstance(decision, PointDns)
    assert decision.expected_current == frozenset({CASTOR_IP, JUSUF_IP})


def test_unreadable_dns_raises_the_alarm() -> None:
    decision = one_round(observation(T, dns=None))
    assert isinstance(decision, Alarm)
    assert decision.condition == "dns_unreadable"


@pytest.mark.parametrize(
    ("lease", "expected"),
    [
        pytest.param(
            LeaseState(LeaseStatus.HELD, "witness-1", valid_until=T + 0.1), NoAction, id="expired"
        ),
        pytest.param(LeaseState(LeaseStatus.HELD, "witness-1"), NoAction, id="no-expiry-known"),
        pytest.param(LeaseState(LeaseStatus.NOT_HELD, "witness-2"), NoAction, id="other-holds"),
        pytest.param(LeaseState(LeaseStatus.ETCD_UNREACHABLE), Alarm, id="etcd-unreachable"),
    ],
)
def test_lease_lost_mid_way_stops_actions(lease: LeaseState, expected: type) -> None:
    # Everything else calls for a switchover; the lease ran out between observing and
    # deciding (expired), or was never confirmed.
    obs = observation(T, castor=False, dns="jusuf", lease=lease)
    decision = one_round(obs, history(CASTOR_DOWN))
    assert isinstance(decision, expected)
    assert not is_action(decision)


def test_without_cluster_state_nothing_moves() -> None:
    decision = one_round(observation(T, dns="jusuf", no_cluster=True))
    assert isinstance(decision, Alarm)
    assert decision.condition == "cluster_unreadable"


def test_without_a_leader_nothing_moves() -> None:
    decision = one_round(observation(T, leader=None))
    assert isinstance(decision, Alarm)
    assert decision.condition == "no_leader"


def test_two_leaders_count_as_none() -> None:
    two = ClusterState(
        tuple(Member(MEMBER[s], s, MemberRole.LEADER, "running", 0, 7) for s in MEMBER)
    )
    decision = one_round(observation(T, cluster_state=two))
    assert isinstance(decision, Alarm)
    assert decision.condition == "no_leader"


def test_leader_outside_every_site_raises_the_alarm() -> None:
    stranger = ClusterState((Member("db-9", None, MemberRole.LEADER, "running", 0, 7),))
    decision = one_round(observation(T, cluster_state=stranger))
    assert isinstance(decision, Alarm)
    assert decision.condition == "leader_unmapped"


@pytest.mark.parametrize(
    ("before", "status"),
    [
        pytest.param("", SiteStatus.SUSPECT, id="first-probe-fails"),
        pytest.param("++-", SiteStatus.SUSPECT, id="second-failure"),
    ],
)
def test_leader_site_not_yet_down_waits(before: str, status: SiteStatus) -> None:
    memory = history(before)
    decision = one_round(observation(T, castor=False, dns="jusuf"), memory)
    assert isinstance(decision, NoAction)
    assert str(status) in decision.reason


def test_observation_without_every_probe_is_not_acted_on() -> None:
    obs = observation(T, dns="jusuf")
    partial = Observation(
        obs.taken_at, {"castor": obs.probes["castor"]}, obs.cluster, obs.dns, obs.lease
    )
    decision = one_round(partial)
    assert isinstance(decision, NoAction)
    assert "jusuf" in decision.reason


def test_memory_must_hold_the_same_observation() -> None:
    obs = observation(T)
    with pytest.raises(ValueError, match=r"Memory\.observe"):
        decide(obs, Memory.start(CONFIG), CONFIG, T + READ_TIME)


def test_other_site_not_confirmed_healthy_blocks_the_switchover() -> None:
    memory = history(CASTOR_DOWN, jusuf="+++-")  # jusuf failed once, just before this round
    decision = one_round(observation(T, castor=False, jusuf=False), memory)
    assert isinstance(decision, Alarm)
    assert decision.condition == "standby_site_unhealthy"


# --- the leader's site down: the name first ----------------------------------------------


def test_leader_site_down_and_other_serving_moves_the_name_then_switches_over() -> None:
    memory = history(CASTOR_DOWN)
    first = observation(T, castor=False)
    point = one_round(first, memory)
    assert isinstance(point, PointDns)
    assert (point.site, point.address) == ("jusuf", JUSUF_IP)
    assert point.expected_current == frozenset({CASTOR_IP})
    assert "jusuf serves healthy" in point.reason
    # The next round sees the name at jusuf: now Patroni is asked, with the usual checks.
    memory = memory.observe(first)
    switch = one_round(observation(T + INTERVAL, castor=False, dns="jusuf"), memory)
    assert isinstance(switch, Switchover)
    assert (switch.from_site, switch.to_site, switch.candidate) == (
        "castor",
        "jusuf",
        MEMBER["jusuf"],
    )
    assert switch.reason == "leader_site_down"
    assert not switch.planned


def test_an_unreadable_record_does_not_hold_the_switchover_up() -> None:
    decision = one_round(observation(T, castor=False, dns=None), history(CASTOR_DOWN))
    assert isinstance(decision, Switchover)


def test_a_record_with_both_addresses_is_replaced_by_the_serving_site() -> None:
    obs = observation(T, castor=False)
    both = DnsRecord("nmpi.lab.example.", frozenset({CASTOR_IP, JUSUF_IP}))
    obs = Observation(obs.taken_at, obs.probes, obs.cluster, both, obs.lease)
    decision = one_round(obs, history(CASTOR_DOWN))
    assert isinstance(decision, PointDns)
    assert decision.site == "jusuf"
    assert decision.expected_current == frozenset({CASTOR_IP, JUSUF_IP})


@pytest.mark.parametrize(
    "jusuf_before",
    [
        pytest.param("++--", id="jusuf-down-too"),  # 503s since castor's cut: DOWN as well
        pytest.param("++++", id="jusuf-suspect"),  # its first 503
    ],
)
def test_other_site_answering_503_with_the_sync_standby_gets_the_name_ahead(
    jusuf_before: str,
) -> None:
    memory = history(CASTOR_DOWN, jusuf=jusuf_before)
    first = observation(T, castor=False, jusuf=False, jusuf_status=503)
    point = one_round(first, memory)
    assert isinstance(point, PointDns)
    assert (point.site, point.address) == ("jusuf", JUSUF_IP)
    assert point.expected_current == frozenset({CASTOR_IP})
    assert "ahead of the promotion" in point.reason
    assert "Patroni promotes the synchronous standby when the leader key expires" in point.reason
    # With the name at jusuf nothing more is done: Patroni promotes by itself (no Switchover:
    # the leader is unreachable); the alarm stays until it has.
    memory = memory.observe(first)
    later = observation(T + INTERVAL, castor=False, jusuf=False, jusuf_status=503, dns="jusuf")
    decision = one_round(later, memory)
    assert isinstance(decision, Alarm)
    assert "already at jusuf" in decision.reason


def test_a_sync_standby_that_stopped_streaming_still_gets_the_name_ahead() -> None:
    # Patroni 3+: the standby of a cut-off leader shows "running" once its WAL receiver
    # gave up (wal_receiver_timeout), often before castor counts as down.
    obs = observation(
        T, castor=False, jusuf=False, jusuf_status=503, replica=Replica(state="running")
    )
    assert isinstance(one_round(obs, history(CASTOR_DOWN, jusuf="++--")), PointDns)


@pytest.mark.parametrize(
    ("replica", "status", "why"),
    [
        pytest.param(
            Replica(role=MemberRole.REPLICA, lag=0), 503, "not the synchronous standby", id="async"
        ),
        pytest.param(
            Replica(role=MemberRole.QUORUM_STANDBY, lag=0),
            503,
            "not the synchronous standby",
            id="quorum",
        ),
        pytest.param(Replica(timeline=6), 503, "on timeline 6", id="other-timeline"),
        pytest.param(Replica(state="starting"), 503, "starting", id="starting"),
        pytest.param(IN_SYNC, None, "does not answer", id="no-http-answer"),
    ],
)
@pytest.mark.parametrize(
    ("jusuf_before", "condition"),
    [
        pytest.param("++--", "both_sites_down", id="jusuf-down"),
        pytest.param("++++", "standby_site_unhealthy", id="jusuf-suspect"),
    ],
)
def test_other_site_not_serving_keeps_the_alarm_unless_it_is_the_sync_standby(
    replica: Replica, status: int | None, why: str, jusuf_before: str, condition: str
) -> None:
    obs = observation(T, castor=False, jusuf=False, jusuf_status=status, replica=replica)
    decision = one_round(obs, history(CASTOR_DOWN, jusuf=jusuf_before))
    assert isinstance(decision, Alarm), decision
    assert decision.condition == condition
    assert why in decision.reason


def test_no_move_ahead_without_a_readable_record() -> None:
    obs = observation(T, castor=False, jusuf=False, jusuf_status=503, dns=None)
    decision = one_round(obs, history(CASTOR_DOWN, jusuf="++--"))
    assert isinstance(decision, Alarm)
    assert "unreadable" in decision.reason


@pytest.mark.parametrize(
    ("jusuf", "status"),
    [pytest.param(True, None, id="jusuf-serves"), pytest.param(False, 503, id="jusuf-503")],
)
def test_two_failed_probes_move_nothing(jusuf: bool, status: int | None) -> None:
    memory = history("++-", jusuf="++-" if not jusuf else "")  # this round: castor's 2nd
    obs = observation(T, castor=False, jusuf=jusuf, jusuf_status=status)
    decision = one_round(obs, memory)
    assert isinstance(decision, NoAction)
    assert "2/3 failed probes" in decision.reason


def test_leader_site_back_with_the_leader_gets_the_name_back() -> None:
    # The name went to jusuf ahead of a promotion that did not happen: castor serves again.
    memory = history(CASTOR_DOWN + "-", jusuf="++555")
    decision = one_round(observation(T, dns="jusuf"), memory)
    assert isinstance(decision, PointDns)
    assert (decision.site, decision.address) == ("castor", CASTOR_IP)
    assert decision.expected_current == frozenset({JUSUF_IP})


def test_the_database_never_fails_back_by_itself() -> None:
    # After a failover castor serves again: the name stays with the leader at jusuf.
    memory = history(CASTOR_DOWN + "--")
    decision = one_round(observation(T, leader="jusuf", dns="jusuf"), memory)
    assert isinstance(decision, NoAction)
    assert "converged" in decision.reason


@pytest.mark.parametrize(
    ("replica", "switches"),
    [
        pytest.param(Replica(role=MemberRole.REPLICA, lag=1000), True, id="lag-at-max"),
        pytest.param(Replica(role=MemberRole.REPLICA, lag=1001), False, id="lag-over-max"),
        pytest.param(Replica(role=MemberRole.REPLICA, lag=None), False, id="lag-unknown"),
        pytest.param(Replica(role=MemberRole.SYNC_STANDBY, lag=10**9), True, id="sync-standby"),
        pytest.param(Replica(role=MemberRole.QUORUM_STANDBY, lag=10**9), False, id="quorum-lag"),
        # Patroni 3+: "running" is a replica that does not stream. A synchronous standby
        # still holds every acknowledged commit (Patroni drops it from /sync first); one
        # judged by lag does not, whatever its last lag said.
        pytest.param(Replica(state="running"), True, id="sync-standby-running"),
        pytest.param(
            Replica(role=MemberRole.REPLICA, state="running", lag=0), False, id="replica-running"
        ),
        pytest.param(
            Replica(role=MemberRole.QUORUM_STANDBY, state="running", lag=0),
            False,
            id="quorum-running",
        ),
        pytest.param(Replica(state="starting"), False, id="starting"),
        pytest.param(Replica(state="in archive recovery"), False, id="archive-recovery"),
    ],
)
def test_in_sync_rule(replica: Replica, switches: bool) -> None:
    obs = observation(T, castor=False, replica=replica, dns="jusuf")  # the name moved first
    decision = one_round(obs, history(CASTOR_DOWN))
    assert isinstance(decision, Switchover if switches else Alarm), decision
    if not switches:
        assert isinstance(decision, Alarm)
        assert decision.condition == "replica_not_in_sync"


def test_a_running_replica_is_refused_for_not_streaming() -> None:
    obs = observation(
        T, castor=False, replica=Replica(role=MemberRole.REPLICA, state="running"), dns="jusuf"
    )
    decision = one_round(obs, history(CASTOR_DOWN))
    assert isinstance(decision, Alarm)
    assert "not streaming" in decision.reason


def test_pending_switchover_is_not_asked_again_while_patroni_works() -> None:
    memory = Memory(history(CASTOR_DOWN).health, PendingSwitchover("jusuf", T - 10))
    decision = one_round(observation(T, castor=False), memory)
    assert isinstance(decision, NoAction)
    assert "waiting" in decision.reason


def test_pending_switchover_is_asked_again_after_the_timeout() -> None:
    old = T - CONFIG.switchover_timeout - 1
    memory = Memory(history(CASTOR_DOWN).health, PendingSwitchover("jusuf", old))
    decision = one_round(observation(T, castor=False, dns="jusuf"), memory)
    assert isinstance(decision, Switchover)
    assert "again" in decision.detail


def test_no_leader_during_a_promotion_is_waited_for() -> None:
    memory = Memory(history(CASTOR_DOWN).health, PendingSwitchover("jusuf", T - 4))
    decision = one_round(observation(T, castor=False, leader=None), memory)
    assert isinstance(decision, NoAction)


def test_pending_is_cleared_when_the_leader_arrives() -> None:
    memory = Memory(history().health, PendingSwitchover("jusuf", T - 4))
    after = memory.observe(observation(T, leader="jusuf", dns="castor"))
    assert after.pending is None


def test_failed_switchover_request_is_not_remembered_as_pending() -> None:
    switch = Switchover("castor", "jusuf", "a", "b", "leader_site_down", "", planned=False)
    memory = history()
    assert memory.acted(switch, T, succeeded=False).pending is None
    assert memory.acted(switch, T).pending == PendingSwitchover("jusuf", T)


# --- floating IP inside a site -------------------------------------------------------------


def fips(attached: str | None, web1: bool, web2: bool) -> dict[str, FloatingIpState]:
    return {
        "castor": FloatingIpState(
            attached_vm=attached,
            vm_probes={"castor-web-1": probe(web1), "castor-web-2": probe(web2)},
        )
    }


def test_failed_web_vm_gets_its_floating_ip_moved_before_any_switchover() -> None:
    obs = observation(T, castor=False, floating_ips=fips("castor-web-1", False, True))
    decision = one_round(obs, history(CASTOR_DOWN))
    assert isinstance(decision, MoveFloatingIp)
    assert (decision.site, decision.address) == ("castor", CASTOR_IP)
    assert (decision.from_vm, decision.to_vm) == ("castor-web-1", "castor-web-2")


def test_floating_ip_is_not_moved_when_the_attached_vm_answers_directly() -> None:
    obs = observation(T, castor=False, floating_ips=fips("castor-web-1", True, True))
    assert isinstance(one_round(obs, history(CASTOR_DOWN)), PointDns)  # the name moves
    obs = observation(T, castor=False, dns="jusuf", floating_ips=fips("castor-web-1", True, True))
    assert isinstance(one_round(obs, history(CASTOR_DOWN)), Switchover)


def test_floating_ip_is_not_moved_without_a_healthy_standby_vm() -> None:
    obs = observation(T, castor=False, floating_ips=fips("castor-web-1", False, False))
    assert isinstance(one_round(obs, history(CASTOR_DOWN)), PointDns)
    obs = observation(T, castor=False, dns="jusuf", floating_ips=fips("castor-web-1", False, False))
    assert isinstance(one_round(obs, history(CASTOR_DOWN)), Switchover)


def test_unreachable_site_api_falls_back_to_the_switchover() -> None:
    # No floating IP state: castor's Neutron did not answer; the switch must not need it.
    obs = observation(T, castor=False, dns="jusuf")
    assert isinstance(one_round(obs, history(CASTOR_DOWN)), Switchover)


def test_a_standby_web_vm_comes_before_the_ahead_of_promotion_move() -> None:
    obs = observation(
        T,
        castor=False,
        jusuf=False,
        jusuf_status=503,
        floating_ips=fips("castor-web-1", False, True),
    )
    assert isinstance(one_round(obs, history(CASTOR_DOWN, jusuf="++--")), MoveFloatingIp)


def test_floating_ip_is_moved_once_per_down_spell() -> None:
    obs = observation(T, castor=False, dns="jusuf", floating_ips=fips("castor-web-2", False, True))
    move = MoveFloatingIp("castor", CASTOR_IP, "castor-web-1", "castor-web-2", "")
    memory = history(CASTOR_DOWN).acted(move, T - 1)
    assert isinstance(one_round(obs, memory), Switchover)
    # Once castor answers again, a later failure may move it again.
    recovered = memory.observe(observation(T + 1))
    assert recovered.fip_moved == frozenset()


def test_down_standby_site_gets_its_floating_ip_repaired() -> None:
    obs = observation(
        T, castor=False, leader="jusuf", dns="jusuf", floating_ips=fips("castor-web-1", False, True)
    )
    decision = one_round(obs, history(CASTOR_DOWN))
    assert isinstance(decision, MoveFloatingIp)
    assert decision.site == "castor"


# --- planned switchover and failback -------------------------------------------------------


def test_planned_switchover_to_an_in_sync_healthy_site() -> None:
    plan = plan_switchover(observation(T), "jusuf", CONFIG, T + READ_TIME)
    assert isinstance(plan, Switchover)
    assert plan.planned
    assert (plan.from_site, plan.to_site, plan.candidate) == ("castor", "jusuf", "jusuf-db-1")
    assert plan.reason == "planned"


@pytest.mark.parametrize(
    ("obs", "target", "why"),
    [
        pytest.param(observation(T, replica=LAGGING), "jusuf", "not in sync", id="not-in-sync"),
        pytest.param(observation(T, jusuf=False), "jusuf", "does not serve healthy", id="down"),
        pytest.param(observation(T), "castor", "already at castor", id="already-there"),
        pytest.param(observation(T), "castr", "unknown site", id="unknown-site"),
        pytest.param(observation(T, no_cluster=True), "jusuf", "unreadable", id="no-cluster"),
        pytest.param(observation(T, leader=None), "jusuf", "no leader", id="no-leader"),
    ],
)
def test_planned_switchover_refusals(obs: Observation, target: str, why: str) -> None:
    plan = plan_switchover(obs, target, CONFIG, T + READ_TIME)
    assert isinstance(plan, Refusal)
    assert why in plan.reason


def test_planned_switchover_refuses_a_stale_observation() -> None:
    plan = plan_switchover(observation(T), "jusuf", CONFIG, T + 10)
    assert isinstance(plan, Refusal)
    assert "stale" in plan.reason


def test_planned_switchover_needs_a_running_leader() -> None:
    members = (
        Member("castor-db-1", "castor", MemberRole.LEADER, "stopping", 0, 7),
        Member("jusuf-db-1", "jusuf", MemberRole.SYNC_STANDBY, "streaming", 0, 7),
    )
    plan = plan_switchover(observation(T, cluster_state=ClusterState(members)), "jusuf", CONFIG, T)
    assert isinstance(plan, Refusal)
    assert "not running" in plan.reason


def test_failback_goes_to_the_preferred_site() -> None:
    plan = plan_failback(observation(T, leader="jusuf", dns="jusuf"), CONFIG, T)
    assert isinstance(plan, Switchover)
    assert (plan.to_site, plan.reason, plan.planned) == ("castor", "failback", True)
    at_home = plan_failback(observation(T), CONFIG, T)
    assert isinstance(at_home, Refusal)


def test_failback_refuses_an_unhealthy_preferred_site() -> None:
    obs = observation(T, castor=False, leader="jusuf", dns="jusuf")
    assert isinstance(plan_failback(obs, CONFIG, T), Refusal)


def test_hard_refusals_are_not_worth_waiting_for() -> None:
    for obs, target in (
        (observation(T, jusuf=False), "jusuf"),
        (observation(T), "castor"),
        (observation(T), "castr"),
        (observation(T, no_cluster=True), "jusuf"),
        (observation(T, leader=None), "jusuf"),
    ):
        plan = plan_switchover(obs, target, CONFIG, T + READ_TIME)
        assert isinstance(plan, Refusal)
        assert plan.wait_for is None, plan


# --- planned moves in Patroni's synchronous mode -------------------------------------------
# Patroni refuses POST /switchover in synchronous mode (not quorum) unless the candidate is in
# its /sync key: /cluster's sync_standby. Right after a role change the old primary rejoins as
# a plain replica, streaming with lag 0, until the new leader's next loop names it.


def sync_cluster(
    replica: Replica, *, mode: bool | None = True, leader: str = "jusuf"
) -> ClusterState:
    """`leader` leads; the other site's member looks like `replica`; /config said `mode`."""
    return replace(cluster(leader, replica), synchronous_mode=mode)


REJOINED = Replica(role=MemberRole.REPLICA, state="streaming", lag=0)


def failback(state: ClusterState) -> Switchover | Refusal:
    obs = observation(T, leader="jusuf", dns="jusuf", cluster_state=state)
    return plan_failback(obs, CONFIG, T + READ_TIME)


def test_synchronous_mode_is_what_config_says_else_a_synchronous_role_shows_it() -> None:
    assert synchronous_mode(sync_cluster(REJOINED, mode=True))
    assert not synchronous_mode(sync_cluster(IN_SYNC, mode=False))  # /config wins
    assert synchronous_mode(sync_cluster(IN_SYNC, mode=None))  # sync_standby only shows in it
    quorum = Replica(role=MemberRole.QUORUM_STANDBY)
    assert synchronous_mode(sync_cluster(quorum, mode=None))
    # Unread /config and no synchronous role (the moment after a role change): asynchronous
    # as far as can be told; Patroni's 412 is then retried by the CLI.
    assert not synchronous_mode(sync_cluster(REJOINED, mode=None))


def test_in_synchronous_mode_a_replica_with_lag_0_is_not_acceptable_to_patroni() -> None:
    state = sync_cluster(REJOINED)
    member = state.members_at("castor")[0]
    problem = patroni_refusal(state, member)
    assert problem is not None
    assert problem.startswith("is not the synchronous standby (replica, streaming, lag 0)")
    plan = failback(state)
    assert isinstance(plan, Refusal)
    assert plan.reason.startswith(
        "castor-db-1 at castor is not the synchronous standby (replica, streaming, lag 0); "
        "in synchronous mode Patroni switches over only to its synchronous standby"
    )
    assert plan.wait_for == (
        "castor-db-1 to become the synchronous standby (replica, streaming, lag 0)"
    )
    assert to_event(plan)["wait_for"] == plan.wait_for  # journaled with the refusal


@pytest.mark.parametrize("role", [MemberRole.SYNC_STANDBY, MemberRole.QUORUM_STANDBY])
def test_in_synchronous_mode_the_synchronous_standby_is_acceptable(role: MemberRole) -> None:
    state = sync_cluster(Replica(role=role))
    assert patroni_refusal(state, state.members_at("castor")[0]) is None
    plan = failback(state)
    assert isinstance(plan, Switchover)
    assert (plan.candidate, plan.to_site, plan.reason) == ("castor-db-1", "castor", "failback")
    assert plan.detail.endswith("castor-db-1 at castor is in sync (the synchronous standby)")


def test_a_synchronous_standby_that_does_not_stream_yet_is_acceptable() -> None:
    # Patroni names it; whether it streams is the lag rule's business, which a synchronous
    # standby passes (it confirmed every commit).
    plan = failback(sync_cluster(Replica(state="running")))
    assert isinstance(plan, Switchover)


def test_asynchronous_mode_keeps_the_lag_rule() -> None:
    plan = failback(sync_cluster(REJOINED, mode=False))
    assert isinstance(plan, Switchover)
    assert plan.candidate == "castor-db-1"
    assert plan.detail.endswith("castor-db-1 at castor is in sync")
    lagging = failback(sync_cluster(LAGGING, mode=False))
    assert isinstance(lagging, Refusal)
    assert "lag 10000000 bytes > max_replica_lag_bytes 1000" in lagging.reason
    assert lagging.wait_for == "castor-db-1 to be in sync (replica, streaming, lag 10000000)"
    # /config unread and no synchronous role: judged as asynchronous.
    assert isinstance(failback(sync_cluster(REJOINED, mode=None)), Switchover)


@pytest.mark.parametrize(
    ("replica", "awaited"),
    [
        pytest.param(
            Replica(role=MemberRole.REPLICA, state="starting", lag=None),
            "castor-db-1 to become the synchronous standby (replica, starting, lag unknown)",
            id="starting",
        ),
        pytest.param(
            Replica(role=MemberRole.REPLICA, state="running", lag=0),
            "castor-db-1 to become the synchronous standby (replica, running, lag 0)",
            id="not-streaming",
        ),
        pytest.param(
            Replica(role=MemberRole.REPLICA, timeline=6),
            "castor-db-1 to become the synchronous standby (replica, streaming, lag 0)",
            id="old-timeline",
        ),
        pytest.param(
            Replica(state="stopped"),
            "castor-db-1 to be in sync (sync_standby, stopped, lag 0)",
            id="named-but-stopped",
        ),
    ],
)
def test_a_rejoining_old_primary_is_waited_for(replica: Replica, awaited: str) -> None:
    plan = failback(sync_cluster(replica))
    assert isinstance(plan, Refusal)
    assert plan.reason.startswith("castor is not in sync (castor-db-1 ")
    assert plan.wait_for == awaited


def test_a_member_missing_from_the_cluster_is_waited_for() -> None:
    leader = Member("jusuf-db-1", "jusuf", MemberRole.LEADER, "running", 0, 7)
    plan = failback(ClusterState((leader,), synchronous_mode=True))
    assert isinstance(plan, Refusal)
    assert plan.reason == "castor is not in sync (no database member at castor)"
    assert plan.wait_for == "a database member at castor to appear in Patroni's /cluster"


def test_the_synchronous_standby_is_preferred_among_several_members() -> None:
    config = make_config(
        sites=[
            {**BASE["sites"][0], "db_members": ["castor-db-1", "castor-db-2"]},
            BASE["sites"][1],
        ]
    )
    members = (
        Member("castor-db-1", "castor", MemberRole.REPLICA, "streaming", 0, 7),
        Member("castor-db-2", "castor", MemberRole.SYNC_STANDBY, "streaming", 500, 7),
        Member("jusuf-db-1", "jusuf", MemberRole.LEADER, "running", 0, 7),
    )
    state = ClusterState(members, synchronous_mode=True)
    chosen = switchover_candidate(state, "castor", config)
    assert isinstance(chosen, Member)
    assert chosen.name == "castor-db-2"
    replicas = ClusterState(
        (members[0], replace(members[1], role=MemberRole.REPLICA), members[2]),
        synchronous_mode=True,
    )
    refused = switchover_candidate(replicas, "castor", config)
    assert isinstance(refused, Refusal)
    assert refused.wait_for == (
        "castor-db-1 to become the synchronous standby (replica, streaming, lag 0)"
    )


def test_the_daemons_unplanned_switchover_keeps_the_lag_rule_in_synchronous_mode() -> None:
    # The leader's site is down: Patroni's /failover takes an async replica in sync, and the
    # daemon does not wait for a synchronous standby there (unchanged by the planned rule).
    state = replace(cluster("castor", REJOINED), synchronous_mode=True)
    obs = observation(T, castor=False, dns="jusuf", cluster_state=state)
    decision = one_round(obs, history(CASTOR_DOWN))
    assert isinstance(decision, Switchover)
    assert (decision.candidate, decision.planned) == ("jusuf-db-1", False)


# --- the etcd raft leader ------------------------------------------------------------------


def test_converged_with_the_etcd_leader_at_the_database_leaders_site_moves_it_to_the_witness() -> (
    None
):
    decision = one_round(observation(T, etcd_leader=etcd_view("castor-db-1")))
    assert isinstance(decision, MoveEtcdLeader)
    assert (decision.from_member, decision.to_member) == ("castor-db-1", "witness-1")
    assert (decision.from_id, decision.to_id) == ("c1", "31")
    assert "renews Patroni's leader key" in decision.reason
    assert is_action(decision)
    event = to_event(decision)
    assert event["kind"] == "move_etcd_leader"
    json.dumps(event)


@pytest.mark.parametrize("leader", ["witness-1", "jusuf-db-1"])
def test_an_etcd_leader_off_the_database_leaders_site_stays(leader: str) -> None:
    decision = one_round(observation(T, etcd_leader=etcd_view(leader)))
    assert isinstance(decision, NoAction)
    assert decision.reason.startswith("converged")


def test_the_etcd_leader_is_not_moved_when_unknown() -> None:
    decision = one_round(observation(T, etcd_leader=None))
    assert isinstance(decision, NoAction)
    assert decision.reason.startswith("converged")


def test_the_etcd_leader_follows_the_database_leader() -> None:
    obs = observation(T, leader="jusuf", dns="jusuf", etcd_leader=etcd_view("jusuf-db-1"))
    decision = one_round(obs)
    assert isinstance(decision, MoveEtcdLeader)
    assert (decision.from_member, decision.to_member) == ("jusuf-db-1", "witness-1")


def test_a_moving_name_comes_before_the_etcd_leader() -> None:
    decision = one_round(observation(T, dns="jusuf", etcd_leader=etcd_view()))
    assert isinstance(decision, PointDns)


@pytest.mark.parametrize("castor", ["+-", "++--"])
def test_the_etcd_leader_stays_while_the_leaders_site_fails(castor: str) -> None:
    obs = observation(T, castor=False, etcd_leader=etcd_view())
    decision = one_round(obs, history(castor))
    assert not isinstance(decision, MoveEtcdLeader)


def test_the_etcd_leader_stays_while_a_switchover_is_under_way() -> None:
    memory = Memory(history().health, PendingSwitchover("jusuf", T - 4))
    decision = one_round(observation(T, etcd_leader=etcd_view()), memory)
    assert isinstance(decision, NoAction)
    assert "waiting for the leader to move" in decision.reason


def test_the_etcd_leader_is_only_moved_by_the_acting_instance() -> None:
    lease = LeaseState(LeaseStatus.NOT_HELD, holder="witness-2")
    decision = one_round(observation(T, lease=lease, etcd_leader=etcd_view()))
    assert isinstance(decision, NoAction)
    assert "not the acting instance" in decision.reason


@pytest.mark.parametrize(
    ("view", "why"),
    [
        (etcd_view(silent=("witness-1",)), "no neutral member answers"),
        (etcd_view(members=("castor-db-1", "jusuf-db-1")), "no neutral member answers"),
        (etcd_view(silent=("castor-db-1",)), "does not answer"),
    ],
)
def test_the_etcd_leader_stays_without_an_answering_neutral_member_and_leader(
    view: EtcdLeaderView, why: str
) -> None:
    decision = one_round(observation(T, etcd_leader=view))
    assert isinstance(decision, NoAction)
    assert decision.reason.startswith("converged")
    assert why in decision.reason


def test_a_learner_is_no_target() -> None:
    view = etcd_view()
    members = tuple(replace(m, learner=m.site is None) for m in view.members)
    decision = one_round(observation(T, etcd_leader=replace(view, members=members)))
    assert isinstance(decision, NoAction)


def test_the_etcd_leader_is_asked_to_move_at_most_once_per_interval() -> None:
    interval = CONFIG.etcd.leader_move_interval
    obs = observation(T, etcd_leader=etcd_view())
    move = one_round(obs)
    assert isinstance(move, MoveEtcdLeader)
    # Failed (or etcd elected castor's member again): not asked again within the interval.
    memory = Memory.start(CONFIG).observe(obs).acted(move, T, succeeded=False)
    assert memory.etcd_moved_at == T
    for later in (INTERVAL, interval - 1):
        again = observation(T + later, etcd_leader=etcd_view())
        decision = decide(again, memory.observe(again), CONFIG, T + later + READ_TIME)
        assert isinstance(decision, NoAction)
        assert "not again within 60 s" in decision.reason
    after = observation(T + interval, etcd_leader=etcd_view())
    decision = decide(after, memory.observe(after), CONFIG, T + interval + READ_TIME)
    assert isinstance(decision, MoveEtcdLeader)


def test_keeping_the_etcd_leader_off_can_be_turned_off() -> None:
    config = make_config(
        etcd={**BASE["etcd"], "keep_leader_off_database_sites": False, "leader_move_interval": 5}
    )
    obs = observation(T, etcd_leader=etcd_view())
    decision = decide(obs, Memory.start(config).observe(obs), config, T + READ_TIME)
    assert isinstance(decision, NoAction)
    assert config.etcd.leader_move_interval == 5


# --- events --------------------------------------------------------------------------------


def test_decisions_serialise_for_the_journal() -> None:
    point = PointDns("castor", CASTOR_IP, frozenset({JUSUF_IP, "203.0.113.9"}), "why")
    event = to_event(point)
    assert event["kind"] == "point_dns"
    assert event["expected_current"] == sorted({JUSUF_IP, "203.0.113.9"})
    assert to_event(Refusal("no"))["kind"] == "refusal"
    json.dumps(event)


def test_site_probe_defaults() -> None:
    assert SiteProbe(ok=True).latency is None
    assert SiteProbe(ok=False, error="timeout").status_code is None
    assert not SiteProbe(ok=False, error="timeout").answered
    assert SiteProbe(ok=False, error="HTTP 503", status_code=503).answered
    assert cluster("castor").leader_name == "castor-db-1"
