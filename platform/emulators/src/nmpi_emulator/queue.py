"""The provider protocol's client side (platform/job_queue/docs/provider-protocol.md).

Claim with GET /jobs/next/{platform}, confirm and report with PUT /jobs/{id}, stream the log with
PATCH /jobs/{id}/log; every write carries the claim id (X-NMPI-Claim), so that a write from a
claim that ran out and went to another site is refused (409) instead of overwriting its work.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from . import __version__

log = logging.getLogger("nmpi_emulator.queue")

CLAIM_HEADER = "X-NMPI-Claim"
# Answers worth trying again: the server or a proxy in front of it is down, busy or failing over.
RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class QueueError(Exception):
    """The job queue could not be used as asked."""


class ClaimLostError(QueueError):
    """409: the job is no longer ours (the claim ran out and the job went to another holder, or
    its state forbids the change). Never retried: the other holder's work must not be touched."""


class QueueRequestError(QueueError):
    """The server refused the request (4xx other than 409/429); retrying would not help."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path}: {status} {detail}")
        self.status = status
        self.detail = detail


class QueueUnavailableError(QueueError):
    """The server could not be reached, or kept failing, until the deadline."""


class Backoff:
    """Exponential back-off with full jitter: the n-th delay is uniform in
    [0, min(cap, base * 2**n)], so that many sites retrying after one outage spread out."""

    def __init__(
        self, base: float = 1.0, cap: float = 10.0, *, rand: Callable[[], float] = random.random
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"Backoff needs 0 < base <= cap (base {base}, cap {cap})")
        self.base = base
        self.cap = cap
        self._rand = rand
        self.attempts = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # Bounded exponent: 2**attempts would overflow a float after ~1000 failures.
        return min(self.cap, self.base * 2.0 ** min(self.attempts, 60))

    def next(self) -> float:
        delay = self._rand() * self.ceiling()
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


@dataclass(frozen=True)
class ClaimedJob:
    """A job as GET /jobs/next handed it out, with the claim to send back on every write."""

    job: dict[str, Any]
    claim: str | None  # None from a server without leases: writes then go by provider identity
    claimed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def id(self) -> int:
        return int(self.job["id"])

    @property
    def platform(self) -> str:
        return str(self.job["hardware_platform"])

    def queue_wait_seconds(self) -> float | None:
        """Time from submission to claim, or None when the job does not say when it came."""
        submitted = self.job.get("timestamp_submission")
        if not isinstance(submitted, str):
            return None
        try:
            at = datetime.fromisoformat(submitted)
        except ValueError:
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return max(0.0, (self.claimed_at - at).total_seconds())


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return response.text[:500]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def tls_trust(verify: str | bool) -> ssl.SSLContext | bool:
    """httpx's `verify` for the queue: a CA bundle file (a private CA), or True/False. Also used
    for the code archives stored in the queue (workspace.py): the same trust as the API's."""
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


class QueueClient:
    """The job queue's public API, as a hardware site with a provider API key uses it.

    `verify`: a CA bundle file (a private CA) or True (the system's). `timeout`: for one request;
    retried calls never run past their deadline. `clock`, `sleep` and `rand` are for tests.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        verify: str | bool = True,
        timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        tls = tls_trust(verify)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._backoff = (backoff_base, backoff_cap)
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"x-api-key": api_key, "User-Agent": f"nmpi-emulator/{__version__}"},
            verify=tls,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> QueueClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- claim -----------------------------------------------------------------------------

    def next_job(self, platform: str) -> ClaimedJob | None:
        """Claim the oldest waiting job of `platform`; None when none waits. One attempt: the
        caller's poll loop backs off. QueueUnavailableError when the server cannot answer."""
        path = f"/jobs/next/{platform}"
        try:
            response = self._http.get(path)
        except httpx.HTTPError as error:
            raise QueueUnavailableError(f"GET {path}: {error!r}") from error
        if response.status_code == 404:
            return None
        if response.status_code in RETRIABLE_STATUS:
            raise QueueUnavailableError(f"GET {path}: {response.status_code} {_detail(response)}")
        if response.is_error:
            raise QueueRequestError("GET", path, response.status_code, _detail(response))
        job = response.json()
        if not isinstance(job, dict) or "id" not in job:
            raise QueueRequestError("GET", path, response.status_code, "the reply is not a job")
        claim = response.headers.get(CLAIM_HEADER)
        if claim is None and isinstance(job.get("claim"), dict):
            claim = str(job["claim"].get("id"))
        return ClaimedJob(job=job, claim=claim)

    # -- writes ----------------------------------------------------------------------------

    def update(
        self, job_id: int, claim: str | None, body: dict[str, Any], *, deadline: float
    ) -> dict[str, Any]:
        """PUT /jobs/{id} (status, log, output_data, provenance, resource_usage), trying again
        on connection errors, 429 and 5xx with back-off until `deadline` seconds from now
        (a repeated PUT changes nothing more: usage is a total, the log is replaced)."""
        response = self._send("PUT", f"/jobs/{job_id}", claim, deadline=deadline, json=body)
        result = response.json()
        if not isinstance(result, dict):
            raise QueueRequestError("PUT", f"/jobs/{job_id}", response.status_code, "not a job")
        return result

    def append_log(self, job_id: int, claim: str | None, text: str, *, deadline: float) -> bool:
        """PATCH /jobs/{id}/log (text/plain): best effort, False when it could not be delivered
        by `deadline`. ClaimLostError still propagates: the job must stop. A retried append
        may land twice; the final PUT replaces the whole log anyway."""
        try:
            self._send(
                "PATCH",
                f"/jobs/{job_id}/log",
                claim,
                deadline=deadline,
                content=text.encode("utf-8"),
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        except ClaimLostError:
            raise
        except QueueError as error:
            log.info("log not appended", extra={"job_id": job_id, "error": str(error)})
            return False
        return True

    def _send(
        self,
        method: str,
        path: str,
        claim: str | None,
        *,
        deadline: float,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(headers or {})
        if claim is not None:
            headers[CLAIM_HEADER] = claim
        backoff = Backoff(*self._backoff, rand=self._rand)
        ends = self._clock() + deadline
        while True:
            left = ends - self._clock()
            wait: float | None = None
            try:
                response = self._http.request(
                    method,
                    path,
                    headers=headers,
                    timeout=max(0.1, min(self.timeout, left)),
                    **kwargs,
                )
            except httpx.HTTPError as error:
                problem = f"{method} {path}: {error!r}"
            else:
                if response.status_code == 409:
                    raise ClaimLostError(f"{method} {path}: 409 {_detail(response)}")
                if response.status_code not in RETRIABLE_STATUS:
                    if response.is_error:
                        raise QueueRequestError(
                            method, path, response.status_code, _detail(response)
                        )
                    return response
                problem = f"{method} {path}: {response.status_code} {_detail(response)}"
                wait = _retry_after(response)
            delay = backoff.next()
            if wait is not None:
                delay = max(delay, min(wait, backoff.cap))
            if self._clock() + delay >= ends:
                raise QueueUnavailableError(
                    f"{problem} (gave up after {backoff.attempts} attempts, "
                    f"{deadline:.0f} s deadline)"
                )
            log.debug("retrying", extra={"request": f"{method} {path}", "error": problem})
            self._sleep(delay)
