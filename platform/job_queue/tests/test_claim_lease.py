"""Claims as leases: GET /jobs/next hands a job out for NMPI_CLAIM_LEASE_SECONDS, the site
confirms or renews it, an unconfirmed claim runs out and the job is handed out again, and a site
whose claim ran out is fenced off (409).

A server of its own, on a database of its own, with a 2-second lease so that expiry is quick to
see; each test uses a platform of its own, so that no test's leftovers come back to another.
Users drive the unmodified nmpi client; sites speak the provider protocol over HTTP.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nmpi
import nmpi.nmpi_user
import pytest
from conftest import Account, run_admin, start_server, stop_server
from nmpi_job_queue import admin, migrate
from nmpi_job_queue.settings import Settings, SettingsError, get_settings
from pg_harness import PgCluster

LEASE = 2  # seconds
SCRIPT = "import pyNN.spiNNaker as sim\nsim.setup()\nsim.run(10.0)\nsim.end()\n"


@pytest.fixture(scope="module")
def lease_database(pg: PgCluster) -> str:
    url = pg.create_database(f"claim_lease_{uuid.uuid4().hex[:8]}")
    migrate.upgrade(Settings(database_url=url))
    return url


@pytest.fixture(scope="module")
def lease_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("claim-lease") / "server.log"


@pytest.fixture(scope="module")
def lease_server(lease_database: str, lease_log: Path) -> Iterator[str]:
    process, base = start_server(lease_database, lease_log, NMPI_CLAIM_LEASE_SECONDS=str(LEASE))
    yield base
    stop_server(process)


@pytest.fixture
def user(lease_database: str) -> Account:
    name = f"user-{uuid.uuid4().hex[:10]}"
    collab = f"collab-{uuid.uuid4().hex[:10]}"

    async def work(session: Any) -> str:
        await admin.add_user(session, name, full_name=name.title())
        await admin.add_member(session, name, collab, "editor")
        return await admin.create_token(session, name)

    return Account(name, run_admin(lease_database, work), collab)


@pytest.fixture
def client(
    user: Account, lease_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> nmpi.Client:
    monkeypatch.setattr(nmpi.nmpi_user, "TOKENFILE", str(tmp_path / "hbptoken"))
    return nmpi.Client(
        token=user.token, job_service=lease_server, user_info_endpoint=f"{lease_server}/userinfo"
    )


@pytest.fixture
def site(lease_database: str, lease_server: str) -> Iterator[Callable[[str], httpx.Client]]:
    """A hardware site (a provider of its own) serving `platform`, as an HTTP client."""
    clients: list[httpx.Client] = []

    def make(platform: str) -> httpx.Client:
        name = f"site-{uuid.uuid4().hex[:8]}"
        key = run_admin(lease_database, lambda s: admin.create_provider_key(s, name, [platform]))
        http = httpx.Client(base_url=lease_server, headers={"x-api-key": key}, timeout=30)
        clients.append(http)
        return http

    yield make
    for http in clients:
        http.close()


def job_id_of(uri: str) -> int:
    return int(uri.rsplit("/", 1)[-1])


def expiry(reply: httpx.Response) -> datetime:
    return datetime.fromisoformat(reply.headers["X-NMPI-Claim-Expires"])


def sleep_past(moment: datetime) -> None:
    """Until just after `moment` (the database's clock: this machine's)."""
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.2)


def expired_count(server: str, platform: str) -> float:
    return counter(server, "nmpi_claims_expired_total", platform)


def counter(server: str, name: str, platform: str) -> float:
    text = httpx.get(f"{server}/metrics", timeout=10).text
    found = re.search(rf'^{name}{{platform="{platform}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def expiry_lines(log: Path, job_id: int) -> list[dict[str, Any]]:
    entries = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    return [
        e
        for e in entries
        if e.get("message") == "claim expired, job handed out again" and e["job_id"] == job_id
    ]


def test_claimed_job_stays_in_the_users_queue_until_it_runs(
    client: nmpi.Client, user: Account, site: Callable[[str], httpx.Client], lease_server: str
) -> None:
    uri = client.submit_job(source=SCRIPT, platform="SpiNNaker", collab_id=user.collab)
    spinnaker = site("SpiNNaker")
    before = counter(lease_server, "nmpi_claims_total", "SpiNNaker")
    claimed = spinnaker.get("/jobs/next/SpiNNaker")
    assert claimed.status_code == 200
    # Counted for the monitoring (a hardware site that stopped polling claims nothing).
    assert counter(lease_server, "nmpi_claims_total", "SpiNNaker") == before + 1
    job = claimed.json()
    assert job["resource_uri"] == uri
    assert job["status"] == "submitted"
    assert job["claim"]["id"] == claimed.headers["X-NMPI-Claim"]
    assert job["claim"]["lease_seconds"] == LEASE
    assert client.job_status(uri) == "submitted"
    assert uri in client.queued_jobs()
    # Confirmed but not running yet: still queued as the user sees it (status filter
    # "submitted" also matches validated and mapped).
    for step in ("validated", "mapped"):
        assert spinnaker.put(uri, json={"status": step}).status_code == 200
        assert client.job_status(uri) == step
        assert uri in client.queued_jobs()
    assert spinnaker.put(uri, json={"status": "running"}).status_code == 200
    assert uri in client.queued_jobs()
    assert spinnaker.put(uri, json={"status": "finished"}).status_code == 200
    assert uri not in client.queued_jobs()
    assert uri in client.completed_jobs(user.collab)


def test_unconfirmed_claim_returns_to_the_queue_and_the_late_site_is_fenced(
    client: nmpi.Client,
    user: Account,
    site: Callable[[str], httpx.Client],
    lease_server: str,
    lease_log: Path,
) -> None:
    uri = client.submit_job(source=SCRIPT, platform="BrainScaleS", collab_id=user.collab)
    job_id = job_id_of(uri)
    dead, other = site("BrainScaleS"), site("BrainScaleS")
    first = dead.get("/jobs/next/BrainScaleS")
    assert first.json()["id"] == job_id
    # While the lease lives, the job is no one else's.
    assert other.get("/jobs/next/BrainScaleS").status_code == 404
    taken = other.put(uri, json={"status": "running"})
    assert taken.status_code == 409
    assert "claimed by another provider" in taken.json()["detail"]
    before = expired_count(lease_server, "BrainScaleS")

    sleep_past(expiry(first))  # the site died: no confirmation, no renewal
    second = other.get("/jobs/next/BrainScaleS")
    assert second.status_code == 200
    assert second.json()["id"] == job_id
    assert second.json()["status"] == "submitted"
    assert second.json()["claim"]["id"] != first.json()["claim"]["id"]
    assert expired_count(lease_server, "BrainScaleS") == before + 1
    [logged] = expiry_lines(lease_log, job_id)
    assert logged["expired_claim"] == first.json()["claim"]["id"]
    assert logged["claim"] == second.json()["claim"]["id"]
    assert logged["level"] == "WARNING"

    # The first site comes back and tries to finish the job: fenced, whether it sends its claim
    # id or (as real sites do) only its key. Nothing of its report is kept.
    late = {"status": "finished", "resource_usage": {"value": 0.5, "units": "wafer-hours"}}
    by_key = dead.put(uri, json=late)
    assert by_key.status_code == 409
    assert "expired and the job was handed out again" in by_key.json()["detail"]
    by_claim = dead.put(uri, json=late, headers={"X-NMPI-Claim": first.json()["claim"]["id"]})
    assert by_claim.status_code == 409
    assert "is not the current claim" in by_claim.json()["detail"]
    assert client.job_status(uri) == "submitted"
    # Nor can it write into the new holder's log.
    text = {"Content-Type": "text/plain"}
    for method in ("PUT", "PATCH"):
        late_log = dead.request(method, f"{uri}/log", content="late site\n", headers=text)
        assert late_log.status_code == 409, (method, late_log.text)
    assert other.patch(f"{uri}/log", content="holder\n", headers=text).status_code == 200
    assert other.get(f"{uri}/log").text == "holder\n"

    for step in ("validated", "running"):
        assert other.put(uri, json={"status": step}).status_code == 200
    done = {"status": "finished", "resource_usage": {"value": 0.25, "units": "wafer-hours"}}
    assert other.put(uri, json=done).status_code == 200
    job = client.get_job(uri)
    assert job["status"] == "finished"
    assert job["resource_usage"] == {"value": 0.25, "units": "wafer-hours"}
    assert [q["usage"] for q in client.quotas(user.collab)] == [pytest.approx(0.25)]


def test_renewal_and_confirmation_keep_the_claim(
    client: nmpi.Client, user: Account, site: Callable[[str], httpx.Client], lease_server: str
) -> None:
    uri = client.submit_job(source=SCRIPT, platform="BrainScaleS-2", collab_id=user.collab)
    holder, other = site("BrainScaleS-2"), site("BrainScaleS-2")
    claimed = holder.get("/jobs/next/BrainScaleS-2")
    claim = {"X-NMPI-Claim": claimed.headers["X-NMPI-Claim"]}
    time.sleep(LEASE / 2)
    renewed = holder.put(uri, json={}, headers=claim)  # a PUT that leaves it submitted renews
    assert renewed.status_code == 200
    assert renewed.headers["X-NMPI-Claim"] == claim["X-NMPI-Claim"]
    assert expiry(renewed) > expiry(claimed)
    sleep_past(expiry(claimed))
    assert other.get("/jobs/next/BrainScaleS-2").status_code == 404  # renewed: still held

    confirmed = holder.put(uri, json={"status": "validated"}, headers=claim)
    assert confirmed.status_code == 200
    assert "X-NMPI-Claim-Expires" not in confirmed.headers  # held for good now
    sleep_past(expiry(renewed))
    assert other.get("/jobs/next/BrainScaleS-2").status_code == 404
    assert expired_count(lease_server, "BrainScaleS-2") == 0
    assert other.put(uri, json={"status": "running"}).status_code == 409
    # A site that sends no claim id is known by its key.
    assert holder.put(uri, json={"status": "running"}).status_code == 200
    assert holder.put(uri, json={"status": "finished"}).status_code == 200
    assert client.job_status(uri) == "finished"


def test_claim_id_tells_apart_pollers_sharing_a_key(
    client: nmpi.Client, user: Account, site: Callable[[str], httpx.Client]
) -> None:
    uri = client.submit_job(source=SCRIPT, platform="Test", collab_id=user.collab)
    poller = site("Test")
    first = poller.get("/jobs/next/Test")
    sleep_past(expiry(first))
    second = poller.get("/jobs/next/Test")  # a second poller with the same key
    assert second.json()["id"] == first.json()["id"]
    stale = {"X-NMPI-Claim": first.headers["X-NMPI-Claim"]}
    refused = poller.put(uri, json={"status": "running"}, headers=stale)
    assert refused.status_code == 409
    assert "the claim expired and the job was handed out again" in refused.json()["detail"]
    unknown = {"X-NMPI-Claim": str(uuid.uuid4())}
    assert poller.put(uri, json={"status": "running"}, headers=unknown).status_code == 409
    assert poller.put(uri, json={}, headers={"X-NMPI-Claim": "not-a-uuid"}).status_code == 422
    current = {"X-NMPI-Claim": second.headers["X-NMPI-Claim"]}
    assert poller.put(uri, json={"status": "running"}, headers=current).status_code == 200
    assert client.job_status(uri) == "running"


def test_lapsed_claim_that_no_one_took_may_still_be_confirmed(
    client: nmpi.Client, user: Account, site: Callable[[str], httpx.Client], lease_server: str
) -> None:
    uri = client.submit_job(source=SCRIPT, platform="Demo", collab_id=user.collab)
    slow, other = site("Demo"), site("Demo")
    claimed = slow.get("/jobs/next/Demo")
    sleep_past(expiry(claimed))
    # No poll came in between: nothing was handed out twice, so the slow site keeps the job.
    assert slow.put(uri, json={"status": "running"}).status_code == 200
    assert other.get("/jobs/next/Demo").status_code == 404
    assert expired_count(lease_server, "Demo") == 0
    assert client.job_status(uri) == "running"


def test_lapsed_claims_are_taken_back_once_each_under_concurrent_polls(
    user: Account, site: Callable[[str], httpx.Client], lease_server: str
) -> None:
    jobs, pollers = 20, 4
    with httpx.Client(
        base_url=lease_server, headers={"Authorization": f"Bearer {user.token}"}, timeout=30
    ) as http:
        submitted = [
            http.post(
                "/jobs/",
                json={"code": f"{i}", "collab": user.collab, "hardware_platform": "Spikey"},
            ).json()["id"]
            for i in range(jobs)
        ]
    first = site("Spikey")
    leases = [first.get("/jobs/next/Spikey").json() for _ in range(jobs)]
    assert sorted(j["id"] for j in leases) == sorted(submitted)
    assert first.get("/jobs/next/Spikey").status_code == 404
    before = expired_count(lease_server, "Spikey")
    sleep_past(max(datetime.fromisoformat(j["claim"]["expires_at"]) for j in leases))

    start = threading.Barrier(pollers)
    claims: list[dict[str, Any]] = []
    errors: list[str] = []

    def poll(http: httpx.Client) -> None:
        start.wait()
        for _ in range(jobs * 3):
            reply = http.get("/jobs/next/Spikey")
            if reply.status_code == 404:
                return
            if reply.status_code != 200:
                errors.append(f"{reply.status_code}: {reply.text[:200]}")
                return
            claims.append(reply.json())
        errors.append("a poller never saw an empty queue")

    threads = [threading.Thread(target=poll, args=(site("Spikey"),)) for _ in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted({c["id"] for c in claims}) == sorted(submitted)  # every lapsed one taken back
    # No job went to two pollers while a lease held it: a job claimed again (on a machine so
    # slow that a new lease ran out during the race) only after the previous lease's end.
    by_job: dict[int, list[dict[str, Any]]] = {}
    for c in claims:
        by_job.setdefault(c["id"], []).append(c["claim"])
    for job_claims in by_job.values():
        ends = sorted(datetime.fromisoformat(c["expires_at"]) for c in job_claims)
        for earlier, later in itertools.pairwise(ends):
            assert (later - earlier).total_seconds() >= LEASE
    assert expired_count(lease_server, "Spikey") == before + len(claims)


@pytest.mark.parametrize("value", ["0", "86401", "soon"])
def test_lease_setting_is_bounded(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NMPI_DATABASE_URL", "postgresql://h/db")
    monkeypatch.setenv("NMPI_CLAIM_LEASE_SECONDS", value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="NMPI_CLAIM_LEASE_SECONDS: Input should be"):
            get_settings()
    finally:
        get_settings.cache_clear()
