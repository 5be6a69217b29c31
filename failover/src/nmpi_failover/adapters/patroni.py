"""Patroni's REST API: the cluster state (GET /cluster) and moving the leader.

Checked against Patroni's own source and docs (patroni/patroni: docs/rest_api.rst,
patroni/api.py `do_POST_failover`/`is_failover_possible`/`poll_failover_result`,
patroni/utils.py `cluster_as_json`) for 2.1.x, 3.x and 4.x; the lab's image (images/patroni)
runs 4.1.5, which the end-to-end tests exercise:

* GET /cluster answers from any member (it reads the DCS): `members[]` with `name`,
  `role` (leader | standby_leader | sync_standby | quorum_standby (4.0+) | replica),
  `state` (replicas report "streaming" since 3.0, "running" before), `timeline`, and
  for non-leaders `lag` in bytes or the string "unknown".
* GET /config answers from any member with the dynamic configuration in the DCS (no
  authentication; 502 while the member has none): `synchronous_mode` (true/"on"/...,
  "quorum" since 4.0) tells whether the candidate of a planned switchover must be the
  synchronous standby. Read after /cluster from each member, on the same connection.
* POST /switchover {leader, candidate}: `leader` is required and must be the current
  leader; in synchronous mode (not quorum) the candidate must be the sync standby, else
  412. POST /failover {candidate}: `candidate` is required, works with or without a
  leader, and skips the sync/lag checks (a leader given to /failover turns it into a
  switchover). Both answer 200 once Patroni saw the new leader ("Successfully switched
  over to ..." or "... instead of ..."), 412 when not possible, 503 when the DCS write
  failed ("failed to write failover key into DCS"), the operation failed ("... failed"),
  or it did not finish within its own poll (2 * max(10, loop_wait) s: "... status
  unknown"), 400 for a malformed request. POSTs may need REST API basic auth when
  `restapi.authentication` is set: not supported here (see the module's callers).
* TLS: with `restapi.certfile` the API is HTTPS; with `restapi.verify_client: optional`
  (the patroni role) every request may present a client certificate and the unsafe ones
  (POST, PUT, PATCH, DELETE) must present one signed by `restapi.cafile`, else 403 for a
  missing certificate (the handshake itself fails for one Patroni cannot verify). The
  config's `patroni:` section gives the CA to check Patroni against and that certificate.

Planned switchovers use /switchover (Patroni checks the candidate is in sync: zero data
loss). Unplanned ones (the leader's site stopped serving) use /failover sent to the
candidate's own site, because the leader's site may not answer; `decide` has already
checked the candidate is in sync. Either way this module then waits, bounded, until its
own /cluster reads show the leader at the target site.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import httpx

from ..config import NO_PASSWORD, Config, PatroniConfig
from ..decide import Switchover
from ..model import ClusterState, Member, MemberRole
from ..ports import ActuatorError, PatroniRefusedError

_ROLES = {
    "leader": MemberRole.LEADER,
    "master": MemberRole.LEADER,  # Patroni 1.x
    "primary": MemberRole.LEADER,
    "standby_leader": MemberRole.LEADER,  # holds the leader lock of a standby cluster
    "sync_standby": MemberRole.SYNC_STANDBY,
    "quorum_standby": MemberRole.QUORUM_STANDBY,
    "replica": MemberRole.REPLICA,
}


def parse_cluster(data: Any, config: Config) -> ClusterState | None:
    """Patroni's /cluster JSON as a ClusterState; None when it is not that document."""
    if not isinstance(data, Mapping) or not isinstance(data.get("members"), list):
        return None
    members = []
    for raw in data["members"]:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
            continue
        name = raw["name"]
        # An unknown role is judged like a plain replica (by lag), never as a leader.
        role = _ROLES.get(str(raw.get("role", "")), MemberRole.REPLICA)
        lag = raw.get("lag")
        timeline = raw.get("timeline")
        members.append(
            Member(
                name=name,
                site=config.site_of_member(name),
                role=role,
                state=str(raw.get("state", "")),
                lag_bytes=lag if isinstance(lag, int) and not isinstance(lag, bool) else None,
                timeline=timeline if isinstance(timeline, int) else None,
            )
        )
    scope = data.get("scope")
    return ClusterState(tuple(members), scope=scope if isinstance(scope, str) else None)


_TRUE = frozenset({"on", "true", "yes", "1"})  # patroni/utils.py parse_bool


def parse_synchronous_mode(data: Any) -> bool | None:
    """Whether Patroni's dynamic configuration (GET /config) asks for synchronous replication,
    read as patroni/global_config.py is_synchronous_mode does: synchronous_mode true (or "on",
    "yes", 1) or "quorum", and not a standby cluster. None when `data` is no such document."""
    if not isinstance(data, Mapping):
        return None
    standby = data.get("standby_cluster")
    if isinstance(standby, Mapping) and any(
        standby.get(key) for key in ("host", "port", "restore_command")
    ):
        return False
    mode = str(data.get("synchronous_mode")).lower()
    return mode in _TRUE or mode == "quorum"


def reconcile(answers: Iterable[ClusterState | None]) -> ClusterState | None:
    """One view of the cluster from several members' /cluster answers (in config order).

    Each member answers from its own copy of the DCS, and a member cut off from etcd keeps
    answering with the cluster as it last saw it, itself as the leader included: a site
    back from an isolation showed its stale "castor leads" while jusuf had been promoted.
    So when answers name different leaders, the one whose leader is on the highest timeline
    is the newest (every promotion starts a new timeline). When that cannot tell them apart
    (same or unknown timelines) the leader is in doubt: the view returned then shows both
    leaders, which means none. When they agree, the first answer in config order that shows
    a leader is taken, else the first answer; None when no member answered. A stale answer
    alone (the up-to-date members silent) cannot be recognised from /cluster."""
    seen = [a for a in answers if a is not None]
    view = _pick(seen)
    if view is None or view.synchronous_mode is not None:
        return view
    # Its member's /config went unanswered: another member's reading of the same setting.
    known = [a.synchronous_mode for a in seen if a.synchronous_mode is not None]
    return replace(view, synchronous_mode=known[0]) if known else view


def _pick(seen: list[ClusterState]) -> ClusterState | None:
    led = [(a, leader) for a in seen if (leader := a.leader) is not None]
    if not led:
        return seen[0] if seen else None
    if len({leader.name for _, leader in led}) == 1:
        return led[0][0]
    timelines = [leader.timeline for _, leader in led if leader.timeline is not None]
    if len(timelines) == len(led):
        newest = [(a, leader) for a, leader in led if leader.timeline == max(timelines)]
        if len({leader.name for _, leader in newest}) == 1:
            return newest[0][0]
    # In doubt: the first answer, with every member some answer names as the leader shown
    # as a leader. ClusterState.leader is None with two leaders, so `decide` changes nothing.
    leaders = {leader.name: leader for _, leader in led}
    members = [leaders.pop(m.name, m) for m in seen[0].members] + list(leaders.values())
    first = seen[0]
    return ClusterState(tuple(members), scope=first.scope, synchronous_mode=first.synchronous_mode)


def ssl_context(tls: PatroniConfig) -> ssl.SSLContext:
    """The client side of TLS to Patroni: its CA (else httpx's default bundle, as without
    the section) and the client certificate when configured. Raises ssl.SSLError (an
    OSError) on an unusable file; `check-config` loads the same files first."""
    if tls.ca_file is not None:
        context = ssl.create_default_context(cafile=str(tls.ca_file))
    else:
        context = httpx.create_ssl_context(trust_env=False)
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=NO_PASSWORD)
    return context


class PatroniRest:
    """`ports.ClusterReader` and `ports.PatroniActuator` over Patroni's REST API."""

    def __init__(
        self,
        config: Config,
        *,
        timeout: float | None = None,
        action_timeout: float = 30.0,
        leader_wait: float | None = None,
        poll_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.timeout = timeout if timeout is not None else config.probe_timeout
        # Patroni holds the POST open while it polls for the new leader (about 20 s).
        self.action_timeout = action_timeout
        self.leader_wait = leader_wait if leader_wait is not None else config.switchover_timeout
        self.poll_interval = poll_interval
        self._monotonic = monotonic
        # Built once, here, not by httpx for every client: loading the CA bundle costs ~15 ms
        # of CPU, which every round paid. Here, so an unusable file stops the start.
        self._verify = ssl_context(config.patroni)

    def _client(self, timeout: float) -> httpx.AsyncClient:
        # Connecting is quick or never: a blackholed site must not hold a POST for long.
        limits = httpx.Timeout(timeout, connect=min(timeout, self.timeout))
        return httpx.AsyncClient(timeout=limits, verify=self._verify, trust_env=False)

    # --- reading ------------------------------------------------------------------------

    async def _get_json(
        self, client: httpx.AsyncClient, url: str, path: str, deadline: float
    ) -> Any:
        """GET `path` of one member by `deadline` (the loop's clock): its JSON, or None for
        any failure."""
        try:
            async with asyncio.timeout_at(deadline):  # the whole exchange, not per read
                response = await client.get(f"{url.rstrip('/')}{path}")
            if response.status_code != 200:
                return None
            return response.json()
        except (httpx.HTTPError, ValueError, TimeoutError, ssl.SSLError):
            # ssl.SSLError: see _post; one member refusing must not cost the others' answers.
            return None

    async def _get_cluster(self, client: httpx.AsyncClient, url: str) -> ClusterState | None:
        """One member's /cluster, then its /config's synchronous_mode on the same connection
        (no second TLS handshake) within the same timeout; None when /config did not answer,
        which costs nothing of the /cluster answer."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        state = parse_cluster(await self._get_json(client, url, "/cluster", deadline), self.config)
        if state is None:
            return None
        dynamic = await self._get_json(client, url, "/config", deadline)
        return replace(state, synchronous_mode=parse_synchronous_mode(dynamic))

    async def read_cluster(self) -> ClusterState | None:
        """Every site's Patroni at once (a down site must not use up the round's time),
        reconciled into one view (see `reconcile`)."""
        urls = [url for site in self.config.sites for url in site.patroni_urls]
        async with self._client(self.timeout) as client:
            answers = await asyncio.gather(*(self._get_cluster(client, u) for u in urls))
        return reconcile(answers)

    # --- acting ---------------------------------------------------------------------------

    def _urls(self, first_site: str) -> list[str]:
        first = list(self.config.site(first_site).patroni_urls)
        rest = [u for s in self.config.sites if s.name != first_site for u in s.patroni_urls]
        return first + rest

    async def _post(self, urls: Iterable[str], path: str, body: dict[str, str]) -> str:
        """POST to the first URL that takes the request; returns Patroni's answer text.

        Raises PatroniRefusedError when Patroni refuses (no other member would answer
        differently: they share the DCS, though for a moment their copies of it may differ,
        which the caller may retry) or ActuatorError when no URL could be reached."""
        errors = []
        async with self._client(self.action_timeout) as client:
            for url in urls:
                target = f"{url.rstrip('/')}{path}"
                try:
                    response = await client.post(target, json=body)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    errors.append(f"{target}: {type(exc).__name__} {exc}".rstrip())
                    continue  # never sent: another member may take it
                except httpx.TimeoutException:
                    # Sent, but the answer is late: Patroni may be acting on it. Wait below.
                    return f"no answer from {target} within {self.action_timeout:g} s"
                except httpx.HTTPError as exc:
                    errors.append(f"{target}: {type(exc).__name__}: {exc}")
                    continue
                except ssl.SSLError as exc:
                    # With TLS 1.3 the server checks the client certificate after the client
                    # has finished its handshake: its refusal (an alert: certificate required,
                    # unknown CA) arrives as the answer is read, and httpx (0.28, anyio 4)
                    # lets it through as ssl.SSLError. The request was not accepted.
                    errors.append(f"{target}: TLS refused: {exc}")
                    continue
                text = response.text.strip()
                code = response.status_code
                if code in (200, 202):
                    return text
                if code == 503 and "unknown" in text:
                    return text  # the failover key is written; the promotion may follow
                if code == 503 and "DCS" in text:
                    errors.append(f"{target}: {text}")  # this member cannot reach etcd
                    continue
                raise PatroniRefusedError(path, code, text)
        raise ActuatorError("patroni", f"no Patroni took {path}: {'; '.join(errors)}")

    async def switchover(self, action: Switchover) -> None:
        if action.planned:
            body = {"leader": action.leader, "candidate": action.candidate}
            answer = await self._post(self._urls(action.to_site), "/switchover", body)
        else:
            body = {"candidate": action.candidate}
            answer = await self._post(self._urls(action.to_site), "/failover", body)
        await self.wait_for_leader(action.to_site, answer)

    async def wait_for_leader(self, site: str, answer: str = "") -> ClusterState:
        """Poll /cluster until the leader is at `site`; ActuatorError after leader_wait."""
        deadline = self._monotonic() + self.leader_wait
        last: ClusterState | None = None
        while True:
            last = await self.read_cluster()
            leader = last.leader if last else None
            if last is not None and leader is not None and leader.site == site:
                return last
            if self._monotonic() >= deadline:
                where = f"{leader.name} at {leader.site}" if leader else "no leader"
                raise ActuatorError(
                    "patroni",
                    f"the leader did not arrive at {site} within {self.leader_wait:g} s "
                    f"(now {where}; Patroni said: {answer or 'nothing'})",
                )
            await asyncio.sleep(self.poll_interval)
