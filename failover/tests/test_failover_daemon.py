"""The daemon loop wired to real DNS (BIND9), real etcd and real HTTPS probes; only Patroni
is an in-process fake (the chaos suite, tests/chaos, runs the daemon against the real one on
the deployed lab).

Rounds are driven one by one (`run_round`), so a scenario takes as long as its reads, not
its intervals; `serve` is run once for real, with its metrics endpoint and shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from failover_services import (
    CASTOR_IP,
    JUSUF_IP,
    EtcdMember,
    World,
    build_world,
    etcd,  # noqa: F401 - fixture
)
from nmpi_failover.adapters.etcd_lease import EtcdLease
from nmpi_failover.daemon import Daemon, RoundResult, serve
from nmpi_failover.model import LeaseState, LeaseStatus


@pytest.fixture
def world(tmp_path: Path, etcd: EtcdMember) -> Iterator[World]:  # noqa: F811
    yield from build_world(tmp_path, etcd.url)


def rounds(daemon: Daemon, count: int) -> list[RoundResult]:
    async def run() -> list[RoundResult]:
        return [await daemon.run_round() for _ in range(count)]

    return asyncio.run(run())


def kinds(results: list[RoundResult]) -> list[str]:
    return [f"{r.decision.kind}:{r.outcome}" for r in results]


def test_dry_run_decides_but_does_not_act(world: World) -> None:
    daemon = world.daemon(dry_run=True)
    world.castor.status = 503  # the leader's site stops serving
    results = rounds(daemon, 5)
    assert kinds(results) == [
        "no_action:none",  # 1 failed probe: suspect
        "point_dns:dry_run",  # 2 = failures_to_down: would move the name to jusuf first
        "point_dns:dry_run",  # (the name never moves, so the switchover never comes)
        "point_dns:dry_run",
        "point_dns:dry_run",
    ]
    assert world.cluster.posts == []  # Patroni was never asked
    assert world.cluster.leader == "castor-db-1"
    assert world.bind.query() == {CASTOR_IP}  # DNS untouched
    decisions = world.events("decision")
    assert len(decisions) == 1  # journaled once, not every round
    assert decisions[0]["kind"] == "point_dns"
    assert decisions[0]["dry_run"] is True
    assert decisions[0]["site"] == "jusuf"
    assert world.events("action") == []
    metrics = daemon.metrics.render().decode()
    assert 'nmpi_failover_switches_total{reason="leader_site_down"} 0.0' in metrics
    assert "nmpi_failover_acting_leader 1.0" in metrics  # dry run still takes the lease


def test_a_real_run_moves_dns_then_switches_over_and_never_fails_back(world: World) -> None:
    daemon = world.daemon(dry_run=False)
    standby = world.daemon(dry_run=False, instance="witness-2")  # a second instance
    world.castor.status = 503
    results = []
    for _ in range(5):
        results += rounds(daemon, 1)
        assert rounds(standby, 1)[0].outcome == "none"  # never acts: no lease
    assert kinds(results) == [
        "no_action:none",
        "point_dns:done",  # castor down, jusuf serves: users go there at once
        "switchover:done",  # next round: unplanned /failover to jusuf's Patroni, waited for
        "no_action:none",  # the leader, who is now where the name already is
        "no_action:none",
    ]
    assert [p["path"] for p in world.cluster.posts] == ["/failover"]
    assert world.cluster.leader == "jusuf-db-1"
    assert world.bind.query() == {JUSUF_IP}
    assert results[-1].decision.reason.startswith("converged: leader and public name at jusuf")

    world.castor.status = 200  # castor recovers: the daemon stays at jusuf
    assert kinds(rounds(daemon, 3)) == ["no_action:none"] * 3
    assert world.bind.query() == {JUSUF_IP}

    done = [e["kind"] for e in world.events("action_done")]
    assert done == ["point_dns", "switchover"]
    changes = {(e["what"], e["to"]) for e in world.events("state_change")}
    assert ("leader", "jusuf-db-1 at jusuf") in changes
    assert ("dns", JUSUF_IP) in changes
    assert ("site.castor", "down") in changes
    # Patroni kept a streaming synchronous standby throughout (the fake promotes instantly).
    assert world.events("redundancy_alarm") == []
    metrics = daemon.metrics.render().decode()
    assert 'nmpi_failover_switches_total{reason="leader_site_down"} 1.0' in metrics
    assert 'nmpi_failover_active_site{site="jusuf"} 1.0' in metrics
    asyncio.run(daemon.shutdown())
    asyncio.run(standby.shutdown())


def test_a_cut_off_leader_site_has_the_name_moved_ahead_of_patronis_promotion(
    world: World,
) -> None:
    """castor silent (its probe times out), jusuf's API answers 503 (no writable database):
    the name moves to jusuf, whose member is the synchronous standby, before Patroni
    promotes it; the daemon never asks Patroni for anything."""
    daemon = world.daemon(dry_run=False)
    world.castor.delay = world.config.probe_timeout + 0.5  # no answer within the timeout
    world.jusuf.status = 503
    try:
        results = rounds(daemon, 3)
        assert kinds(results) == [
            "no_action:none",  # castor suspect
            "point_dns:done",  # castor down; jusuf answers 503 and holds the sync standby
            "alarm:none",  # waiting for Patroni's own promotion, the name already there
        ]
        assert world.bind.query() == {JUSUF_IP}
        probe = results[1].observation.probes["jusuf"]
        assert (probe.ok, probe.status_code) == (False, 503)
        assert results[1].observation.probes["castor"].status_code is None
        assert "ahead of the promotion" in results[1].decision.reason
        world.cluster.promote("jusuf-db-1")  # castor's leader key expired
        world.jusuf.status = 200
        assert kinds(rounds(daemon, 1)) == ["no_action:none"]  # converged
        assert world.cluster.posts == []  # Patroni did it by itself
        assert world.bind.query() == {JUSUF_IP}
    finally:
        world.castor.delay = 0.0
    asyncio.run(daemon.shutdown())


@pytest.fixture
def world_dns_elsewhere(tmp_path: Path, etcd: EtcdMember) -> Iterator[World]:  # noqa: F811
    yield from build_world(tmp_path, etcd.url, dns_at=JUSUF_IP)


def test_the_name_converges_onto_the_leaders_site(world_dns_elsewhere: World) -> None:
    world = world_dns_elsewhere
    daemon = world.daemon(dry_run=False)
    assert kinds(rounds(daemon, 2)) == ["point_dns:done", "no_action:none"]
    assert world.bind.query() == {CASTOR_IP}
    assert world.cluster.posts == []


def test_two_daemons_only_the_lease_holder_acts_and_the_other_takes_over(world: World) -> None:
    """Two instances on one etcd, their rounds interleaved by hand. Only the lease holder
    repairs a stray change of the name. When the holder stops (SIGTERM: `run` ends in
    `shutdown`, which releases the lease) the other acts from its very next round; when the
    holder merely stops renewing (killed, hung), nobody acts until its lease has run out, then
    the other does, and the old holder, back, only observes."""
    ttl = world.config.etcd.lease_ttl
    first = world.daemon(dry_run=False, instance="witness-1")
    second = world.daemon(dry_run=False, instance="witness-2")
    assert rounds(first, 1)[0].observation.lease.holder == "witness-1"
    assert rounds(second, 1)[0].observation.lease == LeaseState(
        LeaseStatus.NOT_HELD, holder="witness-1"
    )

    # A stray change of the name: the other instance only observes it, the holder repairs it.
    world.bind.point(JUSUF_IP)
    assert kinds(rounds(second, 3)) == ["no_action:none"] * 3
    assert world.bind.query() == {JUSUF_IP}
    assert kinds(rounds(first, 2)) == ["point_dns:done", "no_action:none"]
    assert world.bind.query() == {CASTOR_IP}
    assert "nmpi_failover_acting_leader 1.0" in first.metrics.render().decode()
    assert "nmpi_failover_acting_leader 0.0" in second.metrics.render().decode()

    # The holder stops and releases the lease: the other acts at its next round, not a TTL on.
    asyncio.run(first.shutdown())
    stopped = time.monotonic()
    world.bind.point(JUSUF_IP)
    results = rounds(second, 2)
    assert kinds(results) == ["point_dns:done", "no_action:none"]
    assert results[0].observation.lease.holder == "witness-2"
    assert time.monotonic() - stopped < ttl
    assert world.bind.query() == {CASTOR_IP}
    assert "nmpi_failover_acting_leader 0.0" in first.metrics.render().decode()

    # A third instance waits beside the holder, which then stops renewing without releasing.
    third = world.daemon(dry_run=False, instance="witness-3")
    assert rounds(third, 1)[0].observation.lease == LeaseState(
        LeaseStatus.NOT_HELD, holder="witness-2"
    )
    last = rounds(second, 1)[0]  # its last renewal
    assert last.outcome == "none"
    valid_until = last.observation.lease.valid_until
    assert valid_until is not None
    world.bind.point(JUSUF_IP)
    deadline = time.monotonic() + ttl + 5
    while True:
        (result,) = rounds(third, 1)
        if result.observation.lease.status is LeaseStatus.HELD:
            break
        assert result.observation.lease.holder == "witness-2"
        assert result.outcome == "none"
        assert world.bind.query() == {JUSUF_IP}  # nobody acts while the lease may be valid
        assert time.monotonic() < deadline, "the lapsed lease was never taken over"
        time.sleep(0.2)
    assert time.monotonic() >= valid_until  # no overlap with the old holder's window
    assert kinds([result]) == ["point_dns:done"]
    assert world.bind.query() == {CASTOR_IP}

    # The old holder comes back (thawed): it lost the lease and only observes.
    (result,) = rounds(second, 1)
    assert result.observation.lease == LeaseState(LeaseStatus.NOT_HELD, holder="witness-3")
    assert result.outcome == "none"
    world.bind.point(JUSUF_IP)
    assert kinds(rounds(second, 1)) == ["no_action:none"]
    assert kinds(rounds(third, 1)) == ["point_dns:done"]

    # Four repairs in all, each by the holder of the moment; Patroni was never asked.
    assert [e["kind"] for e in world.events("action")] == ["point_dns"] * 4
    assert world.events("action_failed") == []
    assert world.cluster.posts == []
    assert world.cluster.leader == "castor-db-1"
    for daemon in (second, third):
        asyncio.run(daemon.shutdown())


def test_losing_the_lease_while_acting_aborts_the_action(world: World) -> None:
    world.cluster.promote_delay = 5.0  # Patroni takes its time
    daemon = world.daemon(dry_run=False)
    world.castor.status = 503
    intruder = EtcdLease(world.config, name="intruder")
    etcd_url = world.config.etcd.endpoints[0]

    async def scenario() -> RoundResult:
        await daemon.run_round()  # suspect
        assert (await daemon.run_round()).decision.kind == "point_dns"  # the name first
        acting = asyncio.create_task(daemon.run_round())  # switchover under way
        while not world.cluster.posts:
            await asyncio.sleep(0.05)
        lease = daemon.adapters.lease
        assert isinstance(lease, EtcdLease)
        async with httpx.AsyncClient(trust_env=False) as client:  # someone revokes it
            await client.post(f"{etcd_url}/v3/lease/revoke", json={"ID": str(lease.lease_id)})
        assert (await intruder.refresh()).status is LeaseStatus.HELD
        return await acting

    result = asyncio.run(scenario())
    assert result.outcome == "aborted"
    assert [e["kind"] for e in world.events("action_aborted")] == ["switchover"]
    asyncio.run(intruder.release())


def test_serve_exposes_metrics_and_releases_the_lease_on_stop(world: World) -> None:
    host, port = world.config.listen_host_port

    async def scenario() -> str:
        stop_event = asyncio.Event()
        task = asyncio.create_task(
            serve(world.config, dry_run=True, instance="witness-1", stop=stop_event,
                  handle_signals=False)
        )  # fmt: skip
        await asyncio.sleep(1.5)  # two rounds
        async with httpx.AsyncClient(trust_env=False) as client:
            text = (await client.get(f"http://{host}:{port}/metrics")).text
        stop_event.set()
        await asyncio.wait_for(task, 5)
        return text

    text = asyncio.run(scenario())
    assert 'nmpi_failover_site_up{site="castor"} 1.0' in text
    assert "nmpi_failover_acting_leader 1.0" in text
    names = [e["event"] for e in world.events()]
    assert names[0] == "started"
    assert names[-1] == "stopped"
    # Released: the key is gone, nobody holds the lease.
    peek = asyncio.run(EtcdLease(world.config, name="status").peek())
    assert peek == LeaseState(LeaseStatus.NOT_HELD)
