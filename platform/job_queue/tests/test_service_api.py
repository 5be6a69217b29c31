"""Service info, health, readiness, metrics, request ids, maintenance modes, settings errors."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Account, run_admin
from nmpi_job_queue import admin
from nmpi_job_queue.schemas.service import ServiceState


def test_server_info(api: Callable[..., httpx.Client]) -> None:
    info = api().get("/").json()
    assert info["version"] == "3"
    assert info["status"] == "ok"
    assert info["links"]["documentation"] == "/docs"
    assert info["authentication"]["userinfo_endpoint"] == "/userinfo"


def test_health_and_readiness(api: Callable[..., httpx.Client]) -> None:
    assert api().get("/healthz").json() == {"status": "alive"}
    ready = api().get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_request_id_is_echoed_or_made(api: Callable[..., httpx.Client]) -> None:
    assert api().get("/", headers={"x-request-id": "abc123"}).headers["x-request-id"] == "abc123"
    assert len(api().get("/").headers["x-request-id"]) == 32


def test_json_access_log_carries_the_request_id(
    api: Callable[..., httpx.Client], server_log: Path
) -> None:
    request_id = uuid.uuid4().hex
    assert api().get("/healthz", headers={"x-request-id": request_id}).status_code == 200
    lines = [json.loads(line) for line in server_log.read_text().splitlines() if request_id in line]
    assert len(lines) == 1
    entry = lines[0]
    assert entry["request_id"] == request_id
    assert entry["logger"] == "nmpi_job_queue.access"
    assert entry["route"] == "/healthz"
    assert entry["status"] == 200
    assert entry["duration_ms"] >= 0


def test_metrics(api: Callable[..., httpx.Client], new_user: Callable[..., Account]) -> None:
    alice = new_user()
    client = api(alice.token)
    job = {"code": "x", "collab": alice.collab, "hardware_platform": "Demo"}
    assert client.post("/jobs/", json=job).status_code == 201
    text = api().get("/metrics").text
    assert 'nmpi_http_requests_total{method="POST",route="/jobs/",status="201"}' in text
    assert (
        'nmpi_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/jobs/"}' in text
    )
    assert 'nmpi_queue_length{platform="Demo"}' in text
    assert 'nmpi_jobs{status="submitted"}' in text


def test_trailing_slash_in_job_service_is_tolerated(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    # The client joins a job_service ending in "/" with "/projects/": "//projects/".
    assert api(alice.token).get("//jobs/").status_code == 200


@pytest.fixture
def maintenance(database_url: str) -> Iterator[Callable[[ServiceState], None]]:
    def switch(state: ServiceState) -> None:
        run_admin(database_url, lambda s: admin.set_service_status(s, state, "test window"))

    yield switch
    switch(ServiceState.ok)


def test_read_only_refuses_writes_only(
    api: Callable[..., httpx.Client],
    new_user: Callable[..., Account],
    maintenance: Callable[[ServiceState], None],
) -> None:
    alice = new_user()
    client = api(alice.token)
    maintenance(ServiceState.read_only)
    refused = client.post(
        "/jobs/", json={"code": "x", "collab": alice.collab, "hardware_platform": "Demo"}
    )
    assert refused.status_code == 503
    assert "read-only" in refused.json()["detail"]
    assert "test window" in refused.json()["detail"]
    assert client.get("/jobs/").status_code == 200
    assert api().get("/").json()["status"] == "read-only: test window"


def test_down_answers_503_everywhere_but_root(
    api: Callable[..., httpx.Client],
    new_user: Callable[..., Account],
    maintenance: Callable[[ServiceState], None],
) -> None:
    alice = new_user()
    maintenance(ServiceState.down)
    assert api(alice.token).get("/jobs/").status_code == 503
    assert api().get("/readyz").status_code == 503
    assert api().get("/").status_code == 200
    maintenance(ServiceState.ok)
    assert api(alice.token).get("/jobs/").status_code == 200


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "NMPI_DATABASE_URL: is required but not set"),
        ({"NMPI_DATABASE_URL": "mysql://x/y"}, "NMPI_DATABASE_URL: String should match pattern"),
        (
            {"NMPI_DATABASE_URL": "postgresql://h/db", "NMPI_DATABASE_POOL_SIZE": "0"},
            "NMPI_DATABASE_POOL_SIZE: Input should be greater than or equal to 1",
        ),
        (
            {"NMPI_DATABASE_URL": "postgresql://h/db", "NMPI_IDENTITY_MODE": "oidc"},
            "NMPI_OIDC_USERINFO_URL is required when NMPI_IDENTITY_MODE=oidc",
        ),
        (
            {
                "NMPI_DATABASE_URL": "postgresql://h/db",
                "NMPI_DATABASE_STATEMENT_TIMEOUT_MS": "20000",
            },
            "NMPI_DATABASE_STATEMENT_TIMEOUT_MS (20000) must be shorter than "
            "NMPI_DATABASE_COMMAND_TIMEOUT (10.0 s)",
        ),
        (
            {"NMPI_DATABASE_URL": "postgresql://h/db", "NMPI_IDENTITY_MODE": "ldap"},
            "NMPI_IDENTITY_MODE: Input should be 'local' or 'oidc'",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], expected: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NMPI_")}
    result = subprocess.run(
        [sys.executable, "-m", "nmpi_job_queue.cli", "check-config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert expected in result.stderr


def test_check_config_hides_the_password() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NMPI_")}
    password = "pw-" + secrets.token_hex(8)  # made per run
    env["NMPI_DATABASE_URL"] = f"postgresql://nmpi:{password}@db1:5432,db2:5432/nmpi"
    result = subprocess.run(
        [sys.executable, "-m", "nmpi_job_queue.cli", "check-config"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert password not in result.stdout
    assert "nmpi:***@db1:5432,db2:5432/nmpi" in result.stdout
