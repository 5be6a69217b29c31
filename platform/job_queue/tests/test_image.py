"""The nmpi/job-queue image: migrate and serve from the container, as a non-root user.

Builds the image with images/build.sh (cached by Docker, so quick after the first time), then
runs it with host networking against a fresh database of the test PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import run_admin
from nmpi_job_queue import admin
from pg_harness import PgCluster, free_port

REPO = Path(__file__).resolve().parents[3]
DOCKER = (
    "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")
)

pytestmark = pytest.mark.slow


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed: {result.stderr.strip()[-2000:]}")
    return result


def image_ref() -> str:
    env: dict[str, str] = {}
    for line in (REPO / "images" / "images.env").read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            env[key] = value
    return f"{env['NMPI_IMAGE_JOB_QUEUE']}:{env['NMPI_IMAGE_TAG']}"


@pytest.fixture(scope="module")
def image() -> str:
    try:
        engine = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"no Docker engine: {error}")
    if engine.returncode != 0:
        pytest.skip(f"no Docker engine answers: {engine.stderr.strip()[:300]}")
    build = subprocess.run(
        [str(REPO / "images" / "build.sh"), "job-queue"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert build.returncode == 0, f"images/build.sh job-queue failed:\n{build.stderr[-3000:]}"
    return image_ref()


@pytest.fixture
def fresh_database(pg: PgCluster) -> str:
    """A database of its own, empty: the container's `migrate` creates the schema."""
    return pg.create_database(f"image_{uuid.uuid4().hex[:10]}")


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"nmpi-job-queue-test-{uuid.uuid4().hex[:8]}"
    yield name
    docker("rm", "--force", name, check=False)


def health(name: str) -> tuple[str, str]:
    """(container state, health status) of a running container."""
    shown = docker("inspect", "--format", "{{json .State}}", name).stdout
    state: dict[str, Any] = json.loads(shown)
    return state["Status"], (state.get("Health") or {}).get("Status", "none")


def wait_until_ready(name: str, base: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = ("", "")
    while time.monotonic() < deadline:
        last = health(name)
        if last[0] != "running":
            break
        if last[1] == "healthy":
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.5)
    logs = docker("logs", "--tail", "50", name, check=False)
    pytest.fail(
        f"container not ready (state, health = {last}) within {timeout} s; logs:\n"
        f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
    )


def test_image_migrates_serves_and_runs_unprivileged(
    image: str, fresh_database: str, container_name: str
) -> None:
    env = ["--env", f"NMPI_DATABASE_URL={fresh_database}"]
    migrated = docker("run", "--rm", "--network", "host", *env, image, "nmpi-job-queue", "migrate")
    assert "database schema at head" in migrated.stdout

    port = free_port()
    bind = f"127.0.0.1:{port}"
    docker(
        "run", "--detach", "--name", container_name, "--network", "host", *env,
        "--env", f"NMPI_BIND={bind}",  # the HEALTHCHECK probes this port
        "--health-interval", "1s", "--health-start-period", "30s",
        image, "nmpi-job-queue", "serve", "--bind", bind, "--workers", "2",
    )  # fmt: skip
    base = f"http://{bind}"
    wait_until_ready(container_name, base)

    # The image's own user, and every process of the container runs as it (gunicorn is PID 1).
    assert docker("inspect", "--format", "{{.Config.User}}", image).stdout.strip() == "10001:10001"
    uids = docker("exec", container_name, "sh", "-c", "cat /proc/[0-9]*/status").stdout
    real_uids = {line.split()[1] for line in uids.splitlines() if line.startswith("Uid:")}
    assert real_uids == {"10001"}, real_uids
    pid1 = docker("exec", container_name, "cat", "/proc/1/cmdline").stdout.replace("\0", " ")
    assert "gunicorn" in pid1

    username = f"user-{uuid.uuid4().hex[:8]}"
    collab = f"collab-{uuid.uuid4().hex[:8]}"

    async def make_account(session: Any) -> str:
        await admin.add_user(session, username, full_name="Image Tester")
        await admin.add_member(session, username, collab, "editor")
        return await admin.create_token(session, username)

    token = run_admin(fresh_database, make_account)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        reply = client.post(
            "/jobs/",
            json={"code": "print('hello')", "collab": collab, "hardware_platform": "Test"},
        )
        assert reply.status_code == 201, reply.text
        job = reply.json()
        assert job["status"] == "submitted"
        assert job["user_id"] == username
        assert client.get(f"/jobs/{job['id']}").json()["id"] == job["id"]
