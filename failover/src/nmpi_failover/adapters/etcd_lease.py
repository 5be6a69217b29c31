"""The single-actor lease: one etcd key bound to an etcd lease, via the v3 JSON gateway.

Whoever's lease the key is attached to is the acting instance. Taking the key is one
transaction (compare create_revision == 0, then put with our lease), so two contenders
can never both hold it. A transaction is a Raft write: an endpoint that answers but has
no quorum cannot complete it, which is exactly what makes such an endpoint count as
unreachable here (a serializable read would have answered from its stale local copy).

`valid_until` is the monotonic time the request that granted or renewed the lease was
*sent*, plus the TTL etcd returned: etcd starts the TTL when it receives the request, so
the lease cannot lapse before then, and `decide` stops acting at that instant even if
the next renewal never arrives.

Endpoints: the JSON gateway at /v3/ (etcd 3.4+); int64 fields travel as strings, keys
and values as base64. Checked against etcd 3.4.23 (Debian bookworm's etcd-server).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..config import Config
from ..model import LeaseState, LeaseStatus


class EtcdError(Exception):
    """One endpoint could not serve a request (down, no quorum, error answer)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


async def etcd_post(
    client: httpx.AsyncClient,
    endpoint: str,
    path: str,
    body: dict[str, Any],
    budget: float,
) -> dict[str, Any]:
    """POST `body` to one endpoint's JSON gateway; its JSON answer, or EtcdError."""
    try:
        response = await client.post(f"{endpoint}{path}", json=body, timeout=budget)
    except httpx.TimeoutException:
        raise EtcdError(
            f"{endpoint}: no answer within {budget:.2g} s (down or no quorum)"
        ) from None
    except httpx.HTTPError as exc:
        raise EtcdError(f"{endpoint}: {type(exc).__name__}: {exc}") from None
    try:
        data = response.json()
    except ValueError:
        raise EtcdError(f"{endpoint}{path}: HTTP {response.status_code}, not JSON") from None
    if not isinstance(data, dict):
        raise EtcdError(f"{endpoint}{path}: unexpected answer {data!r}")
    if response.status_code != 200 or "error" in data:
        message = data.get("message") or data.get("error") or response.reason_phrase
        raise EtcdError(f"{endpoint}{path}: HTTP {response.status_code}: {message}")
    return data


class EtcdLease:
    """`ports.Lease` on an etcd v3 cluster, trying each configured endpoint in turn."""

    def __init__(
        self,
        config: Config,
        *,
        name: str | None = None,
        timeout: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        etcd = config.etcd
        self.endpoints = [e.rstrip("/") for e in etcd.endpoints]
        self.ttl = etcd.lease_ttl
        self.key = etcd.key.encode()
        self.name = name or socket.gethostname()
        # The whole refresh, all endpoints included, fits in one round's read budget.
        self.timeout = timeout if timeout is not None else config.probe_timeout
        self._monotonic = monotonic
        # Built once: httpx would load the CA bundle again for every client (~15 ms of CPU,
        # twice a round with Patroni's), which alone was most of the daemon's CPU use.
        self._verify: ssl.SSLContext | None = None
        if etcd.ca_file or etcd.cert_file:
            context = ssl.create_default_context(cafile=str(etcd.ca_file) if etcd.ca_file else None)
            if etcd.cert_file and etcd.key_file:
                context.load_cert_chain(str(etcd.cert_file), str(etcd.key_file))
            self._verify = context
        self.lease_id: int | None = None
        self.last_error: str | None = None
        self._first = 0  # the endpoint that answered last: tried first next time

    # --- HTTP ----------------------------------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        """A client with the lease's TLS identity (CA, client certificate), built once."""
        if self._verify is None:
            self._verify = httpx.create_ssl_context(trust_env=False)
        return httpx.AsyncClient(verify=self._verify, trust_env=False)

    def _order(self) -> list[int]:
        count = len(self.endpoints)
        return [(self._first + i) % count for i in range(count)]

    async def _each_endpoint(self, attempt: Callable[[httpx.AsyncClient, str, float], Any]) -> Any:
        """Run `attempt` on one endpoint after another until one completes; EtcdError if none.

        Each endpoint gets an equal share of the time left, so one hanging member (no
        quorum) cannot use up the time the others need, while a refused connection
        passes its unused share on."""
        errors: list[str] = []
        deadline = self._monotonic() + self.timeout
        order = self._order()
        async with self.client() as client:
            for tried, index in enumerate(order):
                share = max(deadline - self._monotonic(), 0.0) / (len(order) - tried)
                if share <= 0.001:
                    errors.append(f"{self.endpoints[index]}: no time left in this round")
                    continue
                try:
                    result = await attempt(client, self.endpoints[index], share)
                except EtcdError as exc:
                    errors.append(str(exc))
                    continue
                self._first = index
                self.last_error = None
                return result
        self.last_error = "; ".join(errors)
        raise EtcdError(self.last_error)

    # --- the lease -------------------------------------------------------------------------

    async def _refresh_at(
        self, client: httpx.AsyncClient, endpoint: str, budget: float
    ) -> LeaseState:
        deadline = self._monotonic() + budget

        def left() -> float:
            return max(deadline - self._monotonic(), 0.01)

        sent = self._monotonic()
        ttl = 0
        if self.lease_id is not None:
            data = await etcd_post(
                client, endpoint, "/v3/lease/keepalive", {"ID": str(self.lease_id)}, left()
            )
            # An expired or unknown lease comes back without TTL (proto3 omits the 0).
            ttl = int(data.get("result", {}).get("TTL", 0))
            if ttl <= 0:
                self.lease_id = None
        if self.lease_id is None:
            sent = self._monotonic()
            data = await etcd_post(client, endpoint, "/v3/lease/grant", {"TTL": self.ttl}, left())
            self.lease_id = int(data["ID"])
            ttl = int(data.get("TTL", 0))
        key = _b64(self.key)
        txn = {
            "compare": [
                {"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": "0"}
            ],
            "success": [
                {
                    "request_put": {
                        "key": key,
                        "value": _b64(self.name.encode()),
                        "lease": str(self.lease_id),
                    }
                }
            ],
            "failure": [{"request_range": {"key": key}}],
        }
        data = await etcd_post(client, endpoint, "/v3/kv/txn", txn, left())
        valid_until = sent + ttl
        if data.get("succeeded"):
            return LeaseState(LeaseStatus.HELD, holder=self.name, valid_until=valid_until)
        return self._from_range(_txn_range(data), valid_until)

    def _from_range(self, kvs: list[dict[str, Any]], valid_until: float | None) -> LeaseState:
        if not kvs:
            return LeaseState(LeaseStatus.NOT_HELD)
        kv = kvs[0]
        holder = _unb64(kv.get("value", "")).decode(errors="replace") or None
        if self.lease_id is not None and int(kv.get("lease", 0)) == self.lease_id:
            # Ours already (taken in an earlier round): the renewal above extended it.
            if valid_until is None:
                return LeaseState(LeaseStatus.NOT_HELD, holder=holder)
            return LeaseState(LeaseStatus.HELD, holder=holder, valid_until=valid_until)
        return LeaseState(LeaseStatus.NOT_HELD, holder=holder)

    async def refresh(self) -> LeaseState:
        """Renew (or grant) our lease and take the key if it is free; never raises."""
        try:
            state: LeaseState = await self._each_endpoint(self._refresh_at)
        except EtcdError:
            return LeaseState(LeaseStatus.ETCD_UNREACHABLE)
        return state

    async def peek(self) -> LeaseState:
        """Who holds the key, by a linearizable read (needs quorum); takes nothing."""

        async def read(client: httpx.AsyncClient, endpoint: str, budget: float) -> LeaseState:
            data = await etcd_post(
                client, endpoint, "/v3/kv/range", {"key": _b64(self.key)}, budget
            )
            return self._from_range(data.get("kvs", []), None)

        try:
            state: LeaseState = await self._each_endpoint(read)
        except EtcdError:
            return LeaseState(LeaseStatus.ETCD_UNREACHABLE)
        return state

    async def release(self) -> None:
        """Revoke the lease, which deletes the key: a successor can act at once."""
        if self.lease_id is None:
            return
        lease_id = self.lease_id

        async def revoke(client: httpx.AsyncClient, endpoint: str, budget: float) -> None:
            try:
                await etcd_post(client, endpoint, "/v3/lease/revoke", {"ID": str(lease_id)}, budget)
            except EtcdError as exc:
                if "lease not found" not in str(exc):  # already expired: nothing to release
                    raise

        with contextlib.suppress(EtcdError):  # unreachable: the lease lapses after its TTL
            await self._each_endpoint(revoke)
        self.lease_id = None


def _txn_range(data: dict[str, Any]) -> list[dict[str, Any]]:
    for response in data.get("responses", []):
        if "response_range" in response:
            kvs: list[dict[str, Any]] = response["response_range"].get("kvs", [])
            return kvs
    return []
