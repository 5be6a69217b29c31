"""etcd_leader_last: the order in which a rolling restart takes the etcd members.

Followers first, the leader last: restarting the leader costs an election (no writes for an
election timeout or more, Patroni's and nmpi-failover's leases meanwhile unrenewed), and
restarting it last costs at most one, where restarting it first could cost one more if the
new leader is restarted later in the same run. Each member's own
`etcdctl endpoint status -w json` (as the role's registered result) gives its ID
(Status.header.member_id) and the leader it follows (Status.leader): the leader is the member
whose ID the others follow. A member whose status could not be read (its container stopped,
missing or unhealthy) serves no one: it goes first.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any


def _status(result: Any) -> dict[str, Any] | None:
    """The Status object of one member's `endpoint status -w json`, or None."""
    if not isinstance(result, dict) or result.get("rc", 1) != 0:
        return None
    try:
        entries = json.loads(result.get("stdout") or "null")
    except ValueError:
        return None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        return None
    status = entries[0].get("Status")
    if not isinstance(status, dict) or not isinstance(status.get("header"), dict):
        return None
    return status


def etcd_leader_last(members: list[str], results: list[Any]) -> list[str]:
    """`members` reordered: unreadable members, then followers, then the leader (each group
    in the given order). `results[i]` is members[i]'s registered `endpoint status` result."""
    if len(members) != len(results):
        raise ValueError(f"etcd_leader_last: {len(members)} members but {len(results)} results")
    statuses = [_status(result) for result in results]
    # The leader as the readable members see it (0: none elected). Several views can differ
    # for a moment around an election: the most common one wins.
    views = Counter(s["leader"] for s in statuses if s is not None and s.get("leader"))
    leader_id = views.most_common(1)[0][0] if views else None
    unreadable = [m for m, s in zip(members, statuses, strict=True) if s is None]
    leaders = [
        m
        for m, s in zip(members, statuses, strict=True)
        if s is not None and leader_id is not None and s["header"].get("member_id") == leader_id
    ]
    followers = [m for m in members if m not in unreadable and m not in leaders]
    return unreadable + followers + leaders


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"etcd_leader_last": etcd_leader_last}
