"""The Patroni adapter: /cluster parsing per Patroni version, and switchover/failover over
HTTP against an in-process Patroni REST API with the documented status codes, also over
HTTPS with client certificates checked as Patroni's `restapi.verify_client` does."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from failover_services import (
    FakeCluster,
    FakePatroni,
    LoopbackCa,
    free_port,
    make_ca,
    two_site_cluster,
    write_config,
)
from failover_testkit import make_config
from nmpi_failover.adapters.patroni import (
    PatroniRest,
    parse_cluster,
    parse_synchronous_mode,
    reconcile,
)
from nmpi_failover.config import Config, load_config
from nmpi_failover.decide import Switchover
from nmpi_failover.model import ClusterState, Member, MemberRole
from nmpi_failover.ports import ActuatorError, PatroniRefusedError

CONFIG = make_config()


def test_parses_patroni_3_and_4_cluster_json() -> None:
    data = {
        "members": [
            {"name": "castor-db-1", "role": "leader", "state": "running", "timeline": 5},
            {
                "name": "jusuf-db-1",
                "role": "sync_standby",
                "state": "streaming",
                "timeline": 5,
                "lag": 0,
                "receive_lag": 0,
                "replay_lag": 0,
            },
            {"name": "witness-db", "role": "quorum_standby", "state": "streaming", "lag": 42},
        ],
        "scope": "nmpi",
    }
    state = parse_cluster(data, CONFIG)
    assert state is not None
    assert state.members == (
        Member("castor-db-1", "castor", MemberRole.LEADER, "running", None, 5),
        Member("jusuf-db-1", "jusuf", MemberRole.SYNC_STANDBY, "streaming", 0, 5),
        Member("witness-db", None, MemberRole.QUORUM_STANDBY, "streaming", 42, None),
    )
    assert state.leader_name == "castor-db-1"


def test_parses_patroni_2_cluster_json() -> None:
    # 2.x: replicas report "running", lag may be the string "unknown", 1.x says "master".
    data = {
        "members": [
            {"name": "castor-db-1", "role": "master", "state": "running", "timeline": 3},
            {"name": "jusuf-db-1", "role": "replica", "state": "running", "lag": "unknown"},
        ]
    }
    state = parse_cluster(data, CONFIG)
    assert state is not None
    assert state.members[0].role is MemberRole.LEADER
    assert state.members[1] == Member(
        "jusuf-db-1", "jusuf", MemberRole.REPLICA, "running", None, None
    )


@pytest.mark.parametrize(
    "data", [None, [], {"members": "x"}, {"scope": "nmpi"}, "<html>", {"members": [1, {}]}]
)
def test_other_documents_are_not_a_cluster(data: Any) -> None:
    state = parse_cluster(data, CONFIG)
    assert state is None or state.members == ()


def test_unknown_roles_are_never_leaders() -> None:
    state = parse_cluster({"members": [{"name": "x", "role": "demoted", "state": "?"}]}, CONFIG)
    assert state is not None
    assert state.leader is None


@pytest.mark.parametrize(
    ("data", "mode"),
    [
        ({"ttl": 20, "loop_wait": 4, "synchronous_mode": True}, True),  # the lab's
        ({"synchronous_mode": "on", "synchronous_mode_strict": False}, True),
        ({"synchronous_mode": "quorum"}, True),  # Patroni 4 quorum commit
        ({"synchronous_mode": False}, False),
        ({"synchronous_mode": "off"}, False),
        ({"ttl": 30}, False),  # Patroni's default
        ({"synchronous_mode": True, "standby_cluster": {"host": "10.0.0.1"}}, False),
        ({"synchronous_mode": True, "standby_cluster": {}}, True),  # not a valid section
        (None, None),  # /config unanswered (502, 404, timeout)
        ("<html>", None),
        ([], None),
    ],
)
def test_synchronous_mode_is_read_from_config_as_patroni_reads_it(
    data: Any, mode: bool | None
) -> None:
    assert parse_synchronous_mode(data) is mode


def test_a_refusal_for_the_sync_standby_is_told_apart() -> None:
    refused = PatroniRefusedError(
        "/switchover", 412, "candidate name does not match with sync_standby"
    )
    assert isinstance(refused, ActuatorError)
    assert refused.actuator == "patroni"
    assert str(refused) == (
        "Patroni refused /switchover (HTTP 412): candidate name does not match with sync_standby"
    )
    assert refused.not_sync_standby
    assert not PatroniRefusedError(
        "/switchover", 412, "leader name does not match"
    ).not_sync_standby
    assert not PatroniRefusedError("/switchover", 503, "Switchover failed").not_sync_standby


# --- over HTTP -----------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[tuple[FakeCluster, FakePatroni, FakePatroni]]:
    cluster = two_site_cluster("castor")
    castor, jusuf = FakePatroni(cluster), FakePatroni(cluster)
    try:
        yield cluster, castor, jusuf
    finally:
        castor.close()
        jusuf.close()


def patroni_config(tmp_path: Path, castor: list[str], jusuf: list[str], **overrides: Any) -> Config:
    path = write_config(
        tmp_path / "config",
        probe_urls=("https://127.0.0.1:1/readyz", "https://127.0.0.1:1/readyz"),
        patroni_urls=(castor, jusuf),
        etcd_urls=["http://127.0.0.1:1"],
        dns_port=free_port(),
        **overrides,
    )
    return load_config(path)


def dead() -> str:
    return f"http://127.0.0.1:{free_port()}"


def switch(planned: bool, to_site: str = "jusuf") -> Switchover:
    other = "castor" if to_site == "jusuf" else "jusuf"
    return Switchover(
        from_site=other,
        to_site=to_site,
        leader=f"{other}-db-1",
        candidate=f"{to_site}-db-1",
        reason="planned" if planned else "leader_site_down",
        detail="test",
        planned=planned,
    )


def test_reads_from_whichever_site_answers(
    tmp_path: Path, fake: tuple[FakeCluster, FakePatroni, FakePatroni]
) -> None:
    _, _, jusuf = fake
    patroni = PatroniRest(patroni_config(tmp_path, [dead()], [jusuf.url]))
    state = asyncio.run(patroni.read_cluster())
    assert state is not None
    assert state.leader is not None
    assert (state.leader.name, state.leader.site) == ("castor-db-1", "castor")
    assert state.members_at("jusuf")[0].role is MemberRole.SYNC_STANDBY


def test_without_config_the_synchronous_mode_is_unknown(
    tmp_path: Path, fake: tuple[FakeCluster, FakePatroni, FakePatroni]
) -> None:
    _, castor, jusuf = fake  # the fake answers /config with 404
    state = asyncio.run(
        PatroniRest(patroni_config(tmp_path, [castor.url], [jusuf.url])).read_cluster()
    )
    assert state is not None
    assert state.leader_name == "castor-db-1"
    assert state.synchronous_mode is None


def mock_patroni(
    tmp_path: Path, answers: dict[tuple[str, str], tuple[int, Any]]
) -> tuple[PatroniRest, list[str]]:
    """A PatroniRest whose requests `answers` serves: (host, path) -> (status, JSON)."""
    config = patroni_config(tmp_path, ["http://castor:8008"], ["http://jusuf:8008"])
    patroni = PatroniRest(config)
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host}{request.url.path}")
        status, data = answers.get((request.url.host, request.url.path), (404, None))
        return httpx.Response(status, json=data)

    def client(timeout: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(handle))

    patroni._client = client  # type: ignore[method-assign]
    return patroni, seen


CLUSTER_JSON = {
    "members": [
        {"name": "castor-db-1", "role": "replica", "state": "streaming", "lag": 0, "timeline": 8},
        {"name": "jusuf-db-1", "role": "leader", "state": "running", "timeline": 8},
    ],
    "scope": "nmpi",
}


def test_read_cluster_reads_the_synchronous_mode_from_config(tmp_path: Path) -> None:
    # Right after a switchover to jusuf: castor rejoined as a plain replica, so nothing in
    # /cluster tells synchronous mode; /config does.
    patroni, seen = mock_patroni(
        tmp_path,
        {
            ("castor", "/cluster"): (200, CLUSTER_JSON),
            ("jusuf", "/cluster"): (200, CLUSTER_JSON),
            ("castor", "/config"): (502, None),  # this member has no config yet
            ("jusuf", "/config"): (200, {"synchronous_mode": True, "loop_wait": 4}),
        },
    )
    state = asyncio.run(patroni.read_cluster())
    assert state is not None
    assert state.leader_name == "jusuf-db-1"
    assert state.synchronous_mode is True  # another member's reading fills in
    assert sorted(seen) == ["castor/cluster", "castor/config", "jusuf/cluster", "jusuf/config"]


def test_config_is_not_read_from_a_member_whose_cluster_failed(tmp_path: Path) -> None:
    patroni, seen = mock_patroni(
        tmp_path,
        {
            ("jusuf", "/cluster"): (200, CLUSTER_JSON),
            ("jusuf", "/config"): (200, {"synchronous_mode": False}),
        },
    )
    state = asyncio.run(patroni.read_cluster())
    assert state is not None
    assert state.synchronous_mode is False
    assert sorted(seen) == ["castor/cluster", "jusuf/cluster", "jusuf/config"]


def test_nobody_answering_is_none(tmp_path: Path) -> None:
    patroni = PatroniRest(patroni_config(tmp_path, [dead()], [dead()]))
    assert asyncio.run(patroni.read_cluster()) is None


def test_planned_switchover_posts_leader_and_candidate(
    tmp_path: Path, fake: tuple[FakeCluster, FakePatroni, FakePatroni]
) -> None:
    cluster, castor, jusuf = fake
    patroni = PatroniRest(patroni_config(tmp_path, [castor.url], [jusuf.url]), poll_interval=0.1)
    asyncio.run(patroni.switchover(switch(planned=True)))
    assert cluster.posts == [
        {"path": "/switchover", "leader": "castor-db-1", "candidate": "jusuf-db-1",
         "via": jusuf.port}
    ]  # fmt: skip
    assert cluster.leader == "jusuf-db-1"


def test_unplanned_failover_goes_to_the_candidates_site(
    tmp_path: Path, fake: tuple[FakeCluster, FakePatroni, FakePatroni]
) -> None:
    cluster, castor, jusuf = fake
    # castor's first Patroni URL does not answer at all; jusuf's takes the request.
    config = patroni_config(tmp_path, [dead(), castor.url], [dead(), jusuf.url])
    asyncio.run(PatroniRest(config, poll_interval=0.1).switchover(switch(planned=False)))
    assert cluster.posts == [{"path": "/failover", "candidate": "jusuf-db-1", "via": jusuf.port}]
    assert cluster.leader == "jusuf-db-1"


def test_a_refusal_is_an_actuator_error_with_patronis_reason(
    tmp_path: Path, fake: tuple[FakeCluster, FakePatroni, FakePatroni]
) -> None:
    cluster, castor, jusuf = fake
    cluster.members["jusuf-db-1"].role = "replica"  # not the sync standby: 412
    patroni = PatroniRest(patroni_config(tmp_path, [castor.url], [jusuf.url]))
    with pytest.raises(
        PatroniRefusedError, match=r"HTTP 412.*does not match with sync_standby"
    ) as e:
        asyncio.run(patroni.switchover(switch(planned=True)))
    assert e.value.not_sync_standby  # the CLI may retry it; the adapter does not
    assert len(cluster.posts) == 1  # a refusal is not retried elsewhere
    assert cluster.leader == "castor-db-1"


def test_a_leader_that_never_arrives_fails_after_the_wait(
    tmp_path: Path, fake: tuple[FakeCluster, FakePatroni, FakePatroni]
) -> None:
    cluster, castor, jusuf = fake
    cluster.promote = lambda candidate: None  # type: ignore[method-assign]  # Patroni stalls
    config = patroni_config(tmp_path, [castor.url], [jusuf.url])
    patroni = PatroniRest(config, leader_wait=0.5, poll_interval=0.1)
    start = time.monotonic()
    with pytest.raises(ActuatorError, match=r"did not arrive at jusuf within 0\.5 s"):
        asyncio.run(patroni.switchover(switch(planned=False)))
    assert time.monotonic() - start < 2


def test_no_patroni_reachable_is_an_actuator_error(tmp_path: Path) -> None:
    patroni = PatroniRest(patroni_config(tmp_path, [dead()], [dead()]))
    with pytest.raises(ActuatorError, match="no Patroni took /failover"):
        asyncio.run(patroni.switchover(switch(planned=False)))


# --- over HTTPS, with client certificates ---------------------------------------------------
# As the patroni role deploys it: the project's CA signs Patroni's server certificate and the
# daemon's client certificate; `restapi.verify_client: optional` lets reads through without a
# client certificate and answers unsafe requests without one with 403.


@dataclass
class TlsPatroni:
    cluster: FakeCluster
    castor: FakePatroni
    jusuf: FakePatroni
    ca: LoopbackCa  # signed both servers' certificates and the daemon's
    stranger: LoopbackCa  # an unrelated CA, with its own client certificate
    verify_client: str

    def config(self, tmp_path: Path, **patroni: Path) -> Config:
        section = {key: str(path) for key, path in patroni.items()}
        return patroni_config(
            tmp_path,
            [self.castor.url],
            [self.jusuf.url],
            **({"patroni": section} if patroni else {}),
        )

    def trusted(self, tmp_path: Path) -> Config:
        """The config the role renders: the project's CA and the daemon's client cert."""
        return self.config(
            tmp_path,
            ca_file=self.ca.ca_file,
            cert_file=self.ca.client_cert_file,
            key_file=self.ca.client_key_file,
        )


@pytest.fixture(params=["optional", "required"])
def tls_patroni(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TlsPatroni]:
    ca, stranger = make_ca(tmp_path / "ca", "ca"), make_ca(tmp_path / "stranger", "stranger")
    cluster = two_site_cluster("castor")
    castor = FakePatroni(cluster, tls=ca, verify_client=request.param)
    jusuf = FakePatroni(cluster, tls=ca, verify_client=request.param)
    try:
        yield TlsPatroni(cluster, castor, jusuf, ca, stranger, request.param)
    finally:
        castor.close()
        jusuf.close()


def test_tls_reads_and_switches_over_with_the_ca_and_client_certificate(
    tmp_path: Path, tls_patroni: TlsPatroni
) -> None:
    assert tls_patroni.castor.url.startswith("https://")
    patroni = PatroniRest(tls_patroni.trusted(tmp_path), poll_interval=0.1)
    state = asyncio.run(patroni.read_cluster())
    assert state is not None
    assert state.leader_name == "castor-db-1"
    asyncio.run(patroni.switchover(switch(planned=True)))
    assert tls_patroni.cluster.posts == [
        {"path": "/switchover", "leader": "castor-db-1", "candidate": "jusuf-db-1",
         "via": tls_patroni.jusuf.port}
    ]  # fmt: skip
    assert tls_patroni.cluster.leader == "jusuf-db-1"
    # An unplanned failover is a POST too, sent to the candidate's site.
    asyncio.run(patroni.switchover(switch(planned=False, to_site="castor")))
    assert tls_patroni.cluster.leader == "castor-db-1"


def test_tls_without_a_client_certificate_cannot_switch_over(
    tmp_path: Path, tls_patroni: TlsPatroni
) -> None:
    config = tls_patroni.config(tmp_path, ca_file=tls_patroni.ca.ca_file)
    patroni = PatroniRest(config, leader_wait=0.3, poll_interval=0.1)
    state = asyncio.run(patroni.read_cluster())
    with pytest.raises(ActuatorError) as raised:
        asyncio.run(patroni.switchover(switch(planned=True)))
    if tls_patroni.verify_client == "optional":  # reads need no client certificate
        assert state is not None
        assert state.leader_name == "castor-db-1"
        assert "Patroni refused /switchover (HTTP 403): client certificate required" in str(
            raised.value
        )
    else:  # required: every handshake without one is refused
        assert state is None
        assert "no Patroni took /switchover" in str(raised.value)
    assert tls_patroni.cluster.posts == []
    assert tls_patroni.cluster.leader == "castor-db-1"


def test_tls_with_the_wrong_ca_fails_verification(tmp_path: Path, tls_patroni: TlsPatroni) -> None:
    config = tls_patroni.config(
        tmp_path,
        ca_file=tls_patroni.stranger.ca_file,
        cert_file=tls_patroni.ca.client_cert_file,
        key_file=tls_patroni.ca.client_key_file,
    )
    patroni = PatroniRest(config)
    assert asyncio.run(patroni.read_cluster()) is None
    with pytest.raises(ActuatorError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(patroni.switchover(switch(planned=True)))
    assert tls_patroni.cluster.posts == []


def test_tls_without_the_section_uses_the_default_bundle_and_fails_verification(
    tmp_path: Path, tls_patroni: TlsPatroni
) -> None:
    patroni = PatroniRest(tls_patroni.config(tmp_path))  # no patroni: section, as before
    assert asyncio.run(patroni.read_cluster()) is None
    with pytest.raises(ActuatorError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(patroni.switchover(switch(planned=True)))


def test_tls_a_client_certificate_of_another_ca_is_refused(
    tmp_path: Path, tls_patroni: TlsPatroni
) -> None:
    config = tls_patroni.config(
        tmp_path,
        ca_file=tls_patroni.ca.ca_file,
        cert_file=tls_patroni.stranger.client_cert_file,
        key_file=tls_patroni.stranger.client_key_file,
    )
    patroni = PatroniRest(config)
    assert asyncio.run(patroni.read_cluster()) is None  # Patroni refuses the handshake
    with pytest.raises(ActuatorError, match="no Patroni took /switchover"):
        asyncio.run(patroni.switchover(switch(planned=True)))
    assert tls_patroni.cluster.posts == []


def test_the_ssl_context_is_built_once(tmp_path: Path, tls_patroni: TlsPatroni) -> None:
    patroni = PatroniRest(tls_patroni.trusted(tmp_path))
    context = patroni._verify
    asyncio.run(patroni.read_cluster())
    asyncio.run(patroni.read_cluster())
    assert patroni._verify is context
    assert context.verify_mode is ssl.CERT_REQUIRED


# --- several members' views ----------------------------------------------------------------


def view(leader: str, timeline: int | None, other_role: MemberRole) -> ClusterState:
    other = "jusuf" if leader == "castor" else "castor"
    return ClusterState(
        (
            Member(f"{leader}-db-1", leader, MemberRole.LEADER, "running", None, timeline),
            Member(f"{other}-db-1", other, other_role, "streaming", 0, timeline),
        )
    )


def test_agreeing_views_give_the_first_that_shows_a_leader() -> None:
    leaderless = ClusterState((Member("jusuf-db-1", "jusuf", MemberRole.REPLICA, "stopped"),))
    first = view("castor", 3, MemberRole.SYNC_STANDBY)
    second = view("castor", 3, MemberRole.REPLICA)
    assert reconcile([None, leaderless, first, second]) is first
    assert reconcile([leaderless, None]) is leaderless
    assert reconcile([None, None]) is None


def test_the_view_takes_another_members_synchronous_mode_when_its_own_is_unknown() -> None:
    first = view("castor", 3, MemberRole.SYNC_STANDBY)
    second = replace(view("castor", 3, MemberRole.REPLICA), synchronous_mode=True)
    state = reconcile([first, second])
    assert state is not None
    assert state.members == first.members
    assert state.synchronous_mode is True
    own = replace(first, synchronous_mode=False)
    assert reconcile([own, second]) is own  # its own reading wins
    castor = replace(view("castor", 4, MemberRole.SYNC_STANDBY), synchronous_mode=True)
    doubt = reconcile([castor, view("jusuf", 4, MemberRole.SYNC_STANDBY)])
    assert doubt is not None
    assert doubt.leader is None
    assert doubt.synchronous_mode is True


def test_a_stale_view_loses_to_the_newer_timeline() -> None:
    # Castor back from an isolation still answers from its old copy of the DCS ("castor
    # leads, timeline 1"); jusuf was promoted meanwhile (timeline 2). Config order is no
    # reason to believe castor: the lab's daemon moved the name back to castor for a round.
    stale = view("castor", 1, MemberRole.SYNC_STANDBY)
    fresh = view("jusuf", 2, MemberRole.REPLICA)
    assert reconcile([stale, fresh]) is fresh
    assert reconcile([fresh, stale]) is fresh


def test_leaders_that_cannot_be_told_apart_mean_no_leader() -> None:
    for timelines in ((4, 4), (None, None), (None, 4)):
        castor = view("castor", timelines[0], MemberRole.SYNC_STANDBY)
        jusuf = view("jusuf", timelines[1], MemberRole.SYNC_STANDBY)
        state = reconcile([castor, jusuf])
        assert state is not None
        assert state.leader is None
        leaders = sorted(m.name for m in state.members if m.role is MemberRole.LEADER)
        assert leaders == ["castor-db-1", "jusuf-db-1"]  # both shown (status, journal)


def test_read_cluster_prefers_the_member_with_the_newest_timeline(tmp_path: Path) -> None:
    stale = two_site_cluster("castor")  # castor's own, outdated copy
    fresh = two_site_cluster("jusuf")
    for member in fresh.members.values():
        member.timeline = 8
    castor, jusuf = FakePatroni(stale), FakePatroni(fresh)
    try:
        patroni = PatroniRest(patroni_config(tmp_path, [castor.url], [jusuf.url]))
        state = asyncio.run(patroni.read_cluster())
    finally:
        castor.close()
        jusuf.close()
    assert state is not None
    assert state.leader is not None
    assert (state.leader.name, state.leader.timeline) == ("jusuf-db-1", 8)
