"""Where the etcd raft leader is, and moving it: etcd's maintenance API via the JSON gateway.

Reading: POST /v3/maintenance/status on every configured endpoint at once (each answers
from its own raft state, no quorum needed: its member ID in header.member_id, the leader it
follows in "leader", its raftTerm), then /v3/cluster/member/list on one that answered (ID ->
name). The leader is the one named by the answer with the highest raft term, so a member
cut off with a stale view does not count. Member names map to sites by the sites'
db_members (in the deployment an etcd member's name is its host's inventory name, like the
Patroni member's); a member no site lists is neutral (the witness).

Moving: POST /v3/maintenance/transfer-leadership {"targetID": ...} (etcd's MoveLeader),
which only the current leader accepts ("etcdserver: not leader" elsewhere): it is sent to the
endpoint whose member answered as the leader just now. etcd answers once the target leads.

Same endpoints and TLS client identity as the lease (`EtcdLease.client`). uint64 IDs travel
as decimal strings.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from ..config import Config
from ..decide import MoveEtcdLeader
from ..model import EtcdLeaderView, EtcdMemberView
from ..ports import ActuatorError
from .etcd_lease import EtcdError, EtcdLease, etcd_post

STATUS = "/v3/maintenance/status"
MEMBERS = "/v3/cluster/member/list"
TRANSFER = "/v3/maintenance/transfer-leadership"
# etcd answers a transfer once the target leads: it first brings the target up to date, and
# raft gives the transfer an election timeout (2.5 s in the lab) before it aborts it.
MOVE_TIMEOUT = 10.0


class EtcdLeadership:
    """`ports.EtcdLeadership` on the lease's endpoints and TLS identity."""

    def __init__(self, config: Config, lease: EtcdLease) -> None:
        self.config = config
        self.lease = lease
        self.timeout = lease.timeout
        self.last_error: str | None = None

    async def _statuses(
        self, client: httpx.AsyncClient, budget: float
    ) -> list[tuple[str, dict[str, Any]]]:
        """(endpoint, status) of every endpoint that answered within `budget`."""

        async def one(endpoint: str) -> tuple[str, dict[str, Any]] | str:
            try:
                return endpoint, await etcd_post(client, endpoint, STATUS, {}, budget)
            except EtcdError as exc:
                return str(exc)

        answers = await asyncio.gather(*(one(e) for e in self.lease.endpoints))
        errors = [a for a in answers if isinstance(a, str)]
        self.last_error = "; ".join(errors) or None
        return [a for a in answers if not isinstance(a, str)]

    async def read(self) -> EtcdLeaderView | None:
        """The leader and the members as this round sees them; None when no endpoint
        answers, no leader is known, or the answers make no sense. Never raises."""
        try:
            async with self.lease.client() as client:
                return await self._read(client, self.timeout)
        except (EtcdError, KeyError, TypeError, ValueError) as exc:
            self.last_error = str(exc)
            return None

    async def _read(self, client: httpx.AsyncClient, budget: float) -> EtcdLeaderView | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        statuses = await self._statuses(client, budget)
        if not statuses:
            return None
        endpoint, newest = max(statuses, key=lambda a: int(a[1].get("raftTerm", 0)))
        leader_id = int(newest.get("leader", 0))
        if leader_id == 0:
            return None  # an election in progress
        answered = {int(status["header"]["member_id"]) for _, status in statuses}
        left = max(deadline - loop.time(), 0.05)
        listed = (await etcd_post(client, endpoint, MEMBERS, {}, left)).get("members", [])
        members = tuple(
            EtcdMemberView(
                name=str(m.get("name", "")),
                id=int(m["ID"]),
                site=self.config.site_of_member(str(m.get("name", ""))),
                answered=int(m["ID"]) in answered,
                learner=bool(m.get("isLearner", False)),
            )
            for m in listed
        )
        leader = next((m for m in members if m.id == leader_id), None)
        if leader is None or not leader.name:
            return None  # not (yet) in the member list it was read from
        return EtcdLeaderView(leader.name, leader_id, leader.site, members)

    async def move(self, action: MoveEtcdLeader) -> None:
        """Transfer the leadership from action.from_member to action.to_member; raises
        ActuatorError("etcd", ...) when the leader is no longer from_member or etcd refuses."""
        from_id, to_id = int(action.from_id, 16), int(action.to_id, 16)
        async with self.lease.client() as client:
            statuses = await self._statuses(client, self.timeout)
            at = [
                endpoint
                for endpoint, status in statuses
                if int(status["header"]["member_id"]) == from_id
            ]
            if not at:
                raise ActuatorError(
                    "etcd",
                    f"etcd member {action.from_member} ({action.from_id}) answers at none of "
                    f"the endpoints{f' ({self.last_error})' if self.last_error else ''}",
                )
            status = next(s for e, s in statuses if e == at[0])
            if int(status.get("leader", 0)) != from_id:
                raise ActuatorError(
                    "etcd", f"{action.from_member} is no longer the etcd leader; not moved"
                )
            body = {"targetID": str(to_id)}
            try:
                await etcd_post(client, at[0], TRANSFER, body, MOVE_TIMEOUT)
            except EtcdError as exc:
                raise ActuatorError(
                    "etcd",
                    f"etcd leadership transfer {action.from_member} -> {action.to_member} "
                    f"failed: {exc}",
                ) from None
