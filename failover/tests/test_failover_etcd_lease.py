"""The single-actor lease against real etcd on loopback: one member, and a 3-member cluster
that loses quorum (one of three) and gets it back (two of three)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from failover_services import (
    EtcdMember,
    etcd,  # noqa: F401 - fixture
    etcd_healthy,
    free_port,
    start_etcd,
    wait_until,
    write_config,
)
from failover_testkit import observation
from nmpi_failover.adapters.etcd_lease import EtcdLease
from nmpi_failover.config import Config, load_config
from nmpi_failover.decide import Alarm, Memory, decide
from nmpi_failover.model import LeaseState, LeaseStatus

UNUSED = ("https://127.0.0.1:1/readyz", "https://127.0.0.1:1/readyz")


def lease_config(tmp_path: Path, endpoints: list[str], *, ttl: int = 3) -> Config:
    path = write_config(
        tmp_path / f"config-{uuid.uuid4().hex[:8]}",
        probe_urls=UNUSED,
        patroni_urls=(["http://127.0.0.1:1"], ["http://127.0.0.1:1"]),
        etcd_urls=endpoints,
        dns_port=free_port(),
        interval=0.5,
        probe_timeout=0.45,
        etcd={"endpoints": endpoints, "lease_ttl": ttl, "key": f"/test/{uuid.uuid4().hex}"},
    )
    return load_config(path)


def test_takes_keeps_and_reports_the_lease(tmp_path: Path, etcd: EtcdMember) -> None:  # noqa: F811
    config = lease_config(tmp_path, [etcd.url])
    lease = EtcdLease(config, name="witness-1")
    before = time.monotonic()
    state = asyncio.run(lease.refresh())
    assert state.status is LeaseStatus.HELD
    assert state.holder == "witness-1"
    assert state.valid_until is not None
    # Counted from when the request was sent: never later than TTL after we asked.
    assert before <= state.valid_until - config.etcd.lease_ttl <= time.monotonic()
    lease_id = lease.lease_id

    again = asyncio.run(lease.refresh())
    assert again.status is LeaseStatus.HELD
    assert lease.lease_id == lease_id  # renewed, not re-granted
    assert again.valid_until is not None
    assert again.valid_until > state.valid_until

    seen = asyncio.run(EtcdLease(config, name="status").peek())
    assert seen == LeaseState(LeaseStatus.NOT_HELD, holder="witness-1")


def test_two_contenders_only_one_holds(tmp_path: Path, etcd: EtcdMember) -> None:  # noqa: F811
    config = lease_config(tmp_path, [etcd.url])
    first, second = EtcdLease(config, name="witness-1"), EtcdLease(config, name="witness-2")

    async def contend() -> list[LeaseState]:
        return list(await asyncio.gather(first.refresh(), second.refresh()))

    states = asyncio.run(contend())
    held = [s for s in states if s.status is LeaseStatus.HELD]
    assert len(held) == 1
    winner, loser = (first, second) if states[0].status is LeaseStatus.HELD else (second, first)
    lost = asyncio.run(loser.refresh())
    assert lost == LeaseState(LeaseStatus.NOT_HELD, holder=winner.name)

    # Released on shutdown: the other takes over at once, not after the TTL.
    asyncio.run(winner.release())
    assert asyncio.run(loser.refresh()).status is LeaseStatus.HELD
    assert asyncio.run(winner.refresh()) == LeaseState(LeaseStatus.NOT_HELD, holder=loser.name)


def test_a_successor_never_holds_before_the_lapsed_lease_was_valid_until(
    tmp_path: Path,
    etcd: EtcdMember,  # noqa: F811
) -> None:
    config = lease_config(tmp_path, [etcd.url], ttl=1)
    first, second = EtcdLease(config, name="witness-1"), EtcdLease(config, name="witness-2")
    state = asyncio.run(first.refresh())
    assert state.status is LeaseStatus.HELD
    assert state.valid_until is not None
    # witness-1 stops renewing (hung, partitioned); witness-2 keeps trying.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        taken = asyncio.run(second.refresh())
        if taken.status is LeaseStatus.HELD:
            break
        assert taken.holder == "witness-1"
        time.sleep(0.1)
    else:
        pytest.fail("the lapsed lease was never taken over")
    assert time.monotonic() >= state.valid_until  # no overlap with the old holder's window
    # The old holder learns it lost (its lease expired) and does not get it back.
    assert asyncio.run(first.refresh()) == LeaseState(LeaseStatus.NOT_HELD, holder="witness-2")


def test_unreachable_etcd_is_reported_not_raised(tmp_path: Path) -> None:
    config = lease_config(tmp_path, [f"http://127.0.0.1:{free_port()}"])
    lease = EtcdLease(config, name="witness-1")
    assert asyncio.run(lease.refresh()) == LeaseState(LeaseStatus.ETCD_UNREACHABLE)
    assert asyncio.run(lease.peek()) == LeaseState(LeaseStatus.ETCD_UNREACHABLE)
    assert lease.last_error is not None
    asyncio.run(lease.release())  # nothing held: no error


def test_a_dead_endpoint_is_skipped(tmp_path: Path, etcd: EtcdMember) -> None:  # noqa: F811
    config = lease_config(tmp_path, [f"http://127.0.0.1:{free_port()}", etcd.url])
    assert asyncio.run(EtcdLease(config, name="w").refresh()).status is LeaseStatus.HELD


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EtcdMember]]:
    members = start_etcd(tmp_path_factory.mktemp("etcd3"), size=3)
    try:
        yield members
    finally:
        for member in members:
            # SIGKILL: a leader whose peers are gone spends seconds on a graceful stop.
            member.stop(signal.SIGKILL)


def test_losing_quorum_makes_the_lease_unreachable_and_acting_stops(
    tmp_path: Path, cluster: list[EtcdMember]
) -> None:
    config = lease_config(tmp_path, [m.url for m in cluster])
    lease = EtcdLease(config, name="witness-1")
    assert asyncio.run(lease.refresh()).status is LeaseStatus.HELD

    cluster[0].stop()  # two of three: still a quorum
    assert asyncio.run(lease.refresh()).status is LeaseStatus.HELD

    cluster[1].stop()  # one of three: no quorum, though that member still answers HTTP
    survivor = cluster[2].url
    assert httpx.get(f"{survivor}/version", timeout=2, trust_env=False).status_code == 200
    start = time.monotonic()
    state = asyncio.run(lease.refresh())
    assert state == LeaseState(LeaseStatus.ETCD_UNREACHABLE)
    assert time.monotonic() - start < config.probe_timeout + 0.5  # bounded by the round
    assert asyncio.run(lease.peek()).status is LeaseStatus.ETCD_UNREACHABLE

    # decide stops acting: the leader's site is down, yet nothing is switched.
    memory = Memory.start(config)
    now = time.monotonic()
    for i in range(config.failures_to_down + 1):
        obs = observation(now + i, castor=False, lease=state)
        memory = memory.observe(obs)
        decision = decide(obs, memory, config, now + i)
        assert isinstance(decision, Alarm)
        assert decision.condition == "etcd_unreachable"

    # A member comes back: two of three are a quorum again, and the lease is held again.
    cluster[1].restart()
    wait_until(lambda: etcd_healthy(survivor), 30, "etcd quorum with two of three members")
    assert asyncio.run(lease.refresh()).status is LeaseStatus.HELD
    seen = asyncio.run(EtcdLease(config, name="status").peek())
    assert seen == LeaseState(LeaseStatus.NOT_HELD, holder="witness-1")
