"""The etcd raft leader kept off the database leader's site, against a real 3-member etcd on
loopback whose members are named as deployed (castor-db-1, jusuf-db-1: the sites' db_members;
witness-1: neutral): the adapter reads and moves the leader, the daemon does it by itself once
converged, and `status` shows it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from failover_services import (
    EtcdMember,
    World,
    build_world,
    etcd_sites,  # noqa: F401 - fixture
)
from nmpi_failover.adapters.etcd_leader import EtcdLeadership
from nmpi_failover.adapters.etcd_lease import EtcdLease
from nmpi_failover.daemon import RoundResult, build_adapters
from nmpi_failover.decide import MoveEtcdLeader
from nmpi_failover.model import EtcdLeaderView
from nmpi_failover.operations import format_status, status
from nmpi_failover.ports import ActuatorError


@pytest.fixture
def world(tmp_path: Path, etcd_sites: list[EtcdMember]) -> Iterator[World]:  # noqa: F811
    yield from build_world(tmp_path, [m.url for m in etcd_sites])


def leadership(world: World) -> EtcdLeadership:
    return EtcdLeadership(world.config, EtcdLease(world.config, name="test"))


def read(world: World) -> EtcdLeaderView:
    view = asyncio.run(leadership(world).read())
    assert view is not None
    return view


def lead(world: World, name: str) -> EtcdLeaderView:
    """Make `name` the etcd leader (etcd's own transfer) and return the view after it."""
    view = read(world)
    if view.leader != name:
        target = next(m for m in view.members if m.name == name)
        move = MoveEtcdLeader(view.leader, name, f"{view.leader_id:x}", f"{target.id:x}", "test")
        asyncio.run(leadership(world).move(move))
        view = read(world)
    assert view.leader == name
    return view


def test_reads_the_leader_and_maps_members_to_sites(world: World) -> None:
    view = lead(world, "jusuf-db-1")
    assert view.site == "jusuf"
    sites = {m.name: m.site for m in view.members}
    assert sites == {"castor-db-1": "castor", "jusuf-db-1": "jusuf", "witness-1": None}
    assert all(m.answered and not m.learner for m in view.members)
    assert [m.name for m in view.neutral] == ["witness-1"]


def test_transfers_the_leadership_to_the_witness_and_back(world: World) -> None:
    view = lead(world, "castor-db-1")
    assert view.site == "castor"
    view = lead(world, "witness-1")
    assert view.site is None
    assert view.member(view.leader_id) == next(m for m in view.members if m.name == "witness-1")


def test_a_move_from_a_member_that_no_longer_leads_is_refused(world: World) -> None:
    view = lead(world, "witness-1")
    castor, jusuf = (
        next(m for m in view.members if m.name == n) for n in ("castor-db-1", "jusuf-db-1")
    )
    stale = MoveEtcdLeader("castor-db-1", "jusuf-db-1", f"{castor.id:x}", f"{jusuf.id:x}", "")
    with pytest.raises(ActuatorError, match="no longer the etcd leader") as caught:
        asyncio.run(leadership(world).move(stale))
    assert caught.value.actuator == "etcd"
    assert read(world).leader == "witness-1"  # nothing changed


def test_an_unreachable_etcd_reads_as_none(world: World) -> None:
    config = world.config.model_copy(
        update={"etcd": world.config.etcd.model_copy(update={"endpoints": ["http://127.0.0.1:1"]})}
    )
    adapter = EtcdLeadership(config, EtcdLease(config, name="test"))
    assert asyncio.run(adapter.read()) is None
    assert adapter.last_error is not None


def test_the_daemon_moves_the_etcd_leader_off_the_database_leaders_site(world: World) -> None:
    lead(world, "castor-db-1")  # the database leader is castor-db-1 too (the fake Patroni)
    daemon = world.daemon(dry_run=False)

    async def run() -> list[RoundResult]:
        try:
            return [await daemon.run_round() for _ in range(3)]
        finally:
            await daemon.shutdown()

    results = asyncio.run(run())
    kinds = [f"{r.decision.kind}:{r.outcome}" for r in results]
    assert kinds == ["move_etcd_leader:done", "no_action:none", "no_action:none"]
    move = results[0].decision
    assert isinstance(move, MoveEtcdLeader)
    assert (move.from_member, move.to_member) == ("castor-db-1", "witness-1")
    seen = results[0].observation.etcd_leader
    assert seen is not None
    assert (seen.leader, seen.site) == ("castor-db-1", "castor")
    after = results[1].observation.etcd_leader
    assert after is not None
    assert (after.leader, after.site) == ("witness-1", None)
    assert read(world).leader == "witness-1"
    assert results[2].decision.reason.startswith("converged")

    assert [e["kind"] for e in world.events("action_done")] == ["move_etcd_leader"]
    changes = [(e["what"], e["to"]) for e in world.events("state_change")]
    assert ("etcd_leader", "castor-db-1 at castor") in changes
    assert ("etcd_leader", "witness-1 at a neutral location") in changes
    metrics = daemon.metrics.render().decode()
    assert "nmpi_failover_etcd_leader_at_database_site 0.0" in metrics
    assert world.cluster.posts == []  # Patroni untouched
    assert world.cluster.leader == "castor-db-1"


def test_a_failed_move_is_reported_and_not_retried_within_the_interval(world: World) -> None:
    lead(world, "castor-db-1")
    daemon = world.daemon(dry_run=False)
    real = daemon.adapters.etcd
    assert real is not None

    class Refusing:
        async def read(self) -> EtcdLeaderView | None:
            assert real is not None
            return await real.read()

        async def move(self, action: MoveEtcdLeader) -> None:
            raise ActuatorError("etcd", "etcdserver: not leader")

    daemon.adapters.etcd = Refusing()

    async def run() -> list[RoundResult]:
        try:
            return [await daemon.run_round() for _ in range(2)]
        finally:
            await daemon.shutdown()

    results = asyncio.run(run())
    assert [f"{r.decision.kind}:{r.outcome}" for r in results] == [
        "move_etcd_leader:failed",
        "no_action:none",
    ]
    assert "not again within 60 s" in results[1].decision.reason
    failed = world.events("action_failed")
    assert [(e["kind"], e["actuator"]) for e in failed] == [("move_etcd_leader", "etcd")]
    metrics = daemon.metrics.render().decode()
    assert 'nmpi_failover_actuator_errors_total{actuator="etcd"} 1.0' in metrics
    assert "nmpi_failover_etcd_leader_at_database_site 1.0" in metrics
    assert read(world).leader == "castor-db-1"


def test_status_shows_the_etcd_leader_and_its_site(world: World) -> None:
    lead(world, "castor-db-1")

    _, report = asyncio.run(status(world.config, build_adapters(world.config), 5))
    etcd = report["etcd"]
    assert etcd["leader"] == "castor-db-1"
    assert etcd["leader_site"] == "castor"
    assert etcd["at_database_leader_site"] is True
    assert [(m["name"], m["site"], m["answered"]) for m in etcd["members"]] == [
        ("castor-db-1", "castor", True),
        ("jusuf-db-1", "jusuf", True),
        ("witness-1", None, True),
    ]
    text = format_status(report)
    assert (
        "etcd leader: castor-db-1 at castor, the database leader's site (the acting daemon "
        "moves it to a neutral member)" in text
    )
    lead(world, "witness-1")
    _, report = asyncio.run(status(world.config, build_adapters(world.config), 5))
    assert report["etcd"]["at_database_leader_site"] is False
    assert "etcd leader: witness-1 at a neutral location; members: " in format_status(report)
