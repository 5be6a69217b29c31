"""roles/etcd's rolling restart order (filter etcd_leader_last): followers first, the leader
last, members that do not answer first. The statuses are real `etcdctl endpoint status -w json`
outputs of a three-member cluster of the project's etcd image (3.4), member m2 leading."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

PLUGIN = Path(__file__).parents[2] / "roles/etcd/filter_plugins/etcd_members.py"
_spec = importlib.util.spec_from_file_location("etcd_members", PLUGIN)
assert _spec is not None
assert _spec.loader is not None
etcd_members = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(etcd_members)

CLUSTER = 3196232294424865868
IDS = {"m1": 4829615448206998641, "m2": 11602544417835755423, "m3": 6137608045871842534}


def status(member: str, leader: str | None) -> dict[str, Any]:
    """The role's registered result of `etcdctl endpoint status -w json` on `member`."""
    body = {
        "Endpoint": "https://127.0.0.1:2379",
        "Status": {
            "header": {
                "cluster_id": CLUSTER,
                "member_id": IDS[member],
                "revision": 1,
                "raft_term": 2,
            },
            "version": "3.4.23",
            "dbSize": 20480,
            "leader": IDS[leader] if leader else 0,
            "raftIndex": 8,
            "raftTerm": 2,
            "raftAppliedIndex": 8,
            "dbSizeInUse": 16384,
        },
    }
    return {"rc": 0, "stdout": json.dumps([body]), "changed": False}


DOWN = {"rc": 1, "stdout": "", "stderr": "Error response from daemon: container is not running"}
SKIPPED = {"skipped": True, "changed": False}


def order(results: dict[str, Any]) -> list[str]:
    return etcd_members.etcd_leader_last(list(results), list(results.values()))  # type: ignore[no-any-return]


def test_real_output_parses_uint64_ids_exactly() -> None:
    # IDs above 2**63 (m2's): JSON numbers that a float would round.
    assert IDS["m2"] > 2**63
    assert order({m: status(m, "m2") for m in IDS}) == ["m1", "m3", "m2"]


@pytest.mark.parametrize("leader", ["m1", "m2", "m3"])
def test_leader_last_whatever_its_place(leader: str) -> None:
    result = order({m: status(m, leader) for m in IDS})
    assert result[-1] == leader
    assert result[:-1] == [m for m in IDS if m != leader]


def test_member_that_does_not_answer_goes_first() -> None:
    results = {"m1": status("m1", "m3"), "m2": DOWN, "m3": status("m3", "m3")}
    assert order(results) == ["m2", "m1", "m3"]


def test_members_disagreeing_during_an_election_follow_the_majority() -> None:
    results = {"m1": status("m1", "m3"), "m2": status("m2", "m1"), "m3": status("m3", "m3")}
    assert order(results)[-1] == "m3"


@pytest.mark.parametrize(
    "results",
    [
        pytest.param({m: SKIPPED for m in IDS}, id="new-cluster-skipped"),
        pytest.param({m: status(m, None) for m in IDS}, id="no-leader"),
        pytest.param({m: {"rc": 0, "stdout": "not json"} for m in IDS}, id="garbage"),
    ],
)
def test_no_leader_known_keeps_the_inventory_order(results: dict[str, Any]) -> None:
    assert order(results) == ["m1", "m2", "m3"]


def test_leader_outside_the_play_keeps_the_order() -> None:
    # --limit without the leader: the members in the play restart in their order.
    results = {"m1": status("m1", "m3"), "m2": status("m2", "m3")}
    assert order(results) == ["m1", "m2"]


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="2 members but 1 results"):
        etcd_members.etcd_leader_last(["m1", "m2"], [DOWN])
