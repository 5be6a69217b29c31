"""Users and a hardware site during a fault: what they see, attempt by attempt.

- A submitter posts jobs through the public name one after another, as a user's script does
  (a new connection per request, like the nmpi client, so a moved name is picked up once the
  cached answer expires), TLS checked against the lab CA for the public name.
- A reader gets the newest acknowledged job back.
- Two pollers claim jobs as a hardware site's workers do (GET /jobs/next/{platform} with the
  provider's key) and confirm each claim (PUT status running), so no lease runs out behind
  them; a job handed to two claims is a double claim.

Every attempt is recorded with its times and the address it went to. Timeouts are bounded
(connect 2 s, answer 15 s: above the job queue's database command timeout, so a slow write is
seen as slow, not as lost). Nothing here retries a failed submission: the next one is a new job.
"""

from __future__ import annotations

import itertools
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from nmpi_lab.chaos.resolver import CachingResolver

CONNECT_TIMEOUT = 2.0
ANSWER_TIMEOUT = 15.0
SUBMIT_PAUSE = 0.25
READ_PAUSE = 0.5
POLL_PAUSE = 0.5
# After the heal, the emulators have this long to finish the user's jobs (the backlog of a fault).
EMULATOR_DEADLINE = 180.0
PLATFORM = "SpiNNaker"


@dataclass(frozen=True)
class Attempt:
    kind: str  # submit | read | claim | confirm
    worker: str
    started: float  # time.time()
    ended: float
    ok: bool
    address: str | None = None
    job_id: int | None = None
    error: str | None = None


@dataclass
class Credentials:
    token: str
    collab: str
    provider_key: str


@dataclass
class LoadClient:
    resolver: CachingResolver
    public_name: str
    ca_file: str
    credentials: Credentials
    label: str = "chaos"
    pollers: int = 2
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._tls = ssl.create_default_context(cafile=self.ca_file)

    # --- running --------------------------------------------------------------------------

    def start(self) -> None:
        workers: Sequence[tuple[str, Callable[[httpx.Client, str], None]]] = [
            ("submitter", self._submit),
            ("reader", self._read),
        ] + [(f"poller-{n}", self._claim) for n in range(1, self.pollers + 1)]
        for name, step in workers:
            thread = threading.Thread(target=self._loop, args=(name, step), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=ANSWER_TIMEOUT + CONNECT_TIMEOUT + 5)

    def _loop(self, name: str, step: Callable[[httpx.Client, str], None]) -> None:
        pause = {"submitter": SUBMIT_PAUSE, "reader": READ_PAUSE}.get(name, POLL_PAUSE)
        timeout = httpx.Timeout(ANSWER_TIMEOUT, connect=CONNECT_TIMEOUT)
        # No keep-alive: each request resolves and connects anew, as the nmpi client does.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(verify=self._tls, timeout=timeout, limits=limits) as client:
            while not self._stop.is_set():
                step(client, name)
                self._stop.wait(pause)

    def _record(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    def _request(
        self, client: httpx.Client, method: str, path: str, headers: dict[str, str], **kw: Any
    ) -> tuple[str, httpx.Response]:
        address = self.resolver.resolve()[0]
        response = client.request(
            method,
            f"https://{address}{path}",
            headers={"Host": self.public_name, **headers},
            extensions={"sni_hostname": self.public_name},
            **kw,
        )
        return address, response

    def _attempt(
        self,
        kind: str,
        worker: str,
        call: Callable[[], tuple[str, httpx.Response]],
        ok_codes: tuple[int, ...],
    ) -> tuple[Attempt, httpx.Response | None]:
        started = time.time()
        address: str | None = None
        try:
            address, response = call()
        except (httpx.HTTPError, OSError) as exc:
            attempt = Attempt(kind, worker, started, time.time(), False, address, None, repr(exc))
            self._record(attempt)
            return attempt, None
        ok = response.status_code in ok_codes
        job_id = None
        if response.status_code in (200, 201):
            try:
                job_id = int(response.json()["id"])
            except (ValueError, KeyError, TypeError):
                ok = False
        error = None if ok else f"HTTP {response.status_code}: {response.text[:200]}"
        attempt = Attempt(kind, worker, started, time.time(), ok, address, job_id, error)
        self._record(attempt)
        return attempt, response

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.token}"}

    def _submit(self, client: httpx.Client, worker: str) -> None:
        body = {
            "command": "run.py {system}",
            "hardware_platform": PLATFORM,
            "collab": self.credentials.collab,
            "code": f"print('{self.label} {time.time():.3f}')",
            "tags": [self.label],
        }
        self._attempt(
            "submit",
            worker,
            lambda: self._request(client, "POST", "/jobs/", self._bearer(), json=body),
            (201,),
        )

    def _read(self, client: httpx.Client, worker: str) -> None:
        acked = self.acknowledged()
        if not acked:
            return
        job_id = acked[-1].job_id
        self._attempt(
            "read",
            worker,
            lambda: self._request(client, "GET", f"/jobs/{job_id}?with_log=false", self._bearer()),
            (200,),
        )

    def _claim(self, client: httpx.Client, worker: str) -> None:
        headers = {"x-api-key": self.credentials.provider_key}
        claim, _ = self._attempt(
            "claim",
            worker,
            lambda: self._request(client, "GET", f"/jobs/next/{PLATFORM}", headers),
            (200, 404),  # 404: nothing to do, a normal answer
        )
        if claim.job_id is None:
            return
        # As a site does: the claim is a lease until confirmed. A confirm lost in a fault
        # leaves the job leased (NMPI_CLAIM_LEASE_SECONDS), never handed out twice meanwhile.
        path = f"/jobs/{claim.job_id}"
        self._attempt(
            "confirm",
            worker,
            lambda: self._request(client, "PUT", path, headers, json={"status": "running"}),
            (200,),
        )

    # --- what was seen ----------------------------------------------------------------------

    def snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)

    def acknowledged(self) -> list[Attempt]:
        return [a for a in self.snapshot() if a.kind == "submit" and a.ok]

    def double_claims(self) -> dict[int, int]:
        """Job id -> times handed out, for every job handed out more than once."""
        counts = Counter(
            a.job_id for a in self.snapshot() if a.kind == "claim" and a.ok and a.job_id
        )
        return {job: n for job, n in counts.items() if n > 1}

    def missing(self, deadline: float = 120.0) -> list[int]:
        """Acknowledged jobs the platform does not know now (read back one by one, through the
        public name, retrying while the service does not answer)."""
        missing = []
        timeout = httpx.Timeout(ANSWER_TIMEOUT, connect=CONNECT_TIMEOUT)
        end = time.monotonic() + deadline
        with httpx.Client(verify=self._tls, timeout=timeout) as client:
            for attempt in self.acknowledged():
                while True:
                    try:
                        _, response = self._request(
                            client, "GET", f"/jobs/{attempt.job_id}?with_log=false", self._bearer()
                        )
                        if response.status_code == 404:
                            missing.append(int(attempt.job_id or 0))
                            break
                        if response.status_code == 200:
                            break
                    except (httpx.HTTPError, OSError):
                        pass
                    if time.monotonic() > end:
                        raise TimeoutError(
                            f"reading back job {attempt.job_id}: no answer within {deadline} s"
                        )
                    time.sleep(1)
        return missing

    def emulator_results(
        self, after: float, deadline: float = EMULATOR_DEADLINE
    ) -> EmulatorResults:
        """Wait until the emulators have finished every acknowledged job that no poller claimed
        (they take them in the order submitted), then read how often each ran."""
        claimed = {a.job_id for a in self.snapshot() if a.kind == "claim" and a.ok and a.job_id}
        jobs = [(a.job_id, a.started) for a in self.acknowledged() if a.job_id not in claimed]
        results = EmulatorResults()
        end = time.monotonic() + deadline
        timeout = httpx.Timeout(ANSWER_TIMEOUT, connect=CONNECT_TIMEOUT)
        with httpx.Client(verify=self._tls, timeout=timeout) as client:
            for job_id, submitted in jobs:
                body: dict[str, Any] = {}
                while True:
                    try:
                        _, response = self._request(
                            client, "GET", f"/jobs/{job_id}?with_log=false", self._bearer()
                        )
                        if response.status_code == 200:
                            body = response.json()
                            if body.get("status") in ("finished", "error"):
                                break
                    except (httpx.HTTPError, OSError, ValueError):
                        pass
                    if time.monotonic() > end:
                        break
                    time.sleep(1)
                if body.get("status") != "finished":
                    results.unfinished.append(int(job_id or 0))
                    results.last_status[int(job_id or 0)] = str(body.get("status", "unread"))
                    continue
                results.finished.append(int(job_id or 0))
                results.finished_after += submitted >= after
                runs = (body.get("provenance") or {}).get("emulator", {}).get("runs", 1)
                if runs != 1:
                    results.run_twice.append(int(job_id or 0))
        return results


@dataclass
class EmulatorResults:
    """What the emulated SpiNNaker site did with the user's jobs that the pollers did not take."""

    finished: list[int] = field(default_factory=list)
    finished_after: int = 0  # of them, submitted after the given moment (the fault)
    unfinished: list[int] = field(default_factory=list)  # not finished by the deadline
    last_status: dict[int, str] = field(default_factory=dict)  # of those: the status last read
    run_twice: list[int] = field(default_factory=list)  # provenance: run more than once


def longest_gap(times: list[float], start: float, end: float) -> float:
    """Longest interval between consecutive times in [start, end], the bounds included as
    points: the longest stretch with no acknowledged submission."""
    points = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(points))
