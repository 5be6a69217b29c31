"""Fixtures: a real PostgreSQL, the migrated schema, a live server, users, providers, clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nmpi
import nmpi.nmpi_user
import pytest
from nmpi_job_queue import admin, migrate
from nmpi_job_queue.db import make_engine, make_sessionmaker
from nmpi_job_queue.settings import Settings
from nmpi_lab import processes
from pg_harness import PgCluster, cluster_root, free_port

T = TypeVar("T")


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    root = cluster_root()
    cluster = PgCluster(root / "primary", free_port(), "primary").init().start()
    yield cluster
    cluster.remove()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(pg: PgCluster) -> str:
    url = pg.create_database("nmpi")
    migrate.upgrade(Settings(database_url=url))
    return url


def run_admin(database_url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run admin functions in one committed session against `database_url`."""

    async def run() -> T:
        engine = make_engine(Settings(database_url=database_url))
        try:
            async with make_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def uvicorn_command(port: int, *options: str) -> list[str]:
    """The job-queue server as the tests run it: uvicorn on 127.0.0.1:`port`, no access log."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "nmpi_job_queue.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *options,
        "--no-access-log",
    ]


def start_server(
    database_url: str, log: Path, port: int | None = None, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """A job-queue server on 127.0.0.1:`port` (a free one if not given), once /healthz answers.
    `port` is given when the server's own URL must be known before it starts (an OIDC
    redirect URL registered at a provider)."""
    port = port or free_port()
    environment = {
        **os.environ,
        "NMPI_DATABASE_URL": database_url,
        "NMPI_SERVICE_STATUS_CACHE_SECONDS": "0",
        "NMPI_LOG_FORMAT": "json",
        **env,
    }
    process = processes.start(uvicorn_command(port), log, env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: processes.http_ok(f"{base}/healthz"),
            30,
            "the job-queue server",
            interval=0.1,
            process=process,
            log=log,
        )
    except BaseException:
        processes.stop(process)
        raise
    return process, base


def stop_server(process: subprocess.Popen[bytes]) -> None:
    processes.stop(process)


@pytest.fixture(scope="session")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server") / "server.log"


@pytest.fixture(scope="session")
def server(database_url: str, server_log: Path) -> Iterator[str]:
    """Base URL of a live job-queue server (uvicorn) on the test database."""
    process, base = start_server(database_url, server_log)
    yield base
    stop_server(process)


@dataclass(frozen=True)
class Account:
    username: str
    token: str
    collab: str  # a collab of its own, where it is editor


@pytest.fixture
def new_user(database_url: str) -> Callable[..., Account]:
    """Make a user with a token; by default editor of a fresh collab of its own."""

    def make(roles: dict[str, str] | None = None, username: str | None = None) -> Account:
        name = username or f"user-{uuid.uuid4().hex[:10]}"
        collab = f"collab-{uuid.uuid4().hex[:10]}"
        memberships = {collab: "editor", **(roles or {})}

        async def work(session: Any) -> str:
            await admin.add_user(session, name, full_name=name.title(), email=f"{name}@example.org")
            for c, role in memberships.items():
                await admin.add_member(session, name, c, role)
            return await admin.create_token(session, name)

        return Account(name, run_admin(database_url, work), collab)

    return make


@pytest.fixture
def new_provider(database_url: str) -> Callable[[list[str]], str]:
    """Make a provider API key bound to the given platforms."""

    def make(platforms: list[str]) -> str:
        name = f"provider-{uuid.uuid4().hex[:8]}"
        return run_admin(database_url, lambda s: admin.create_provider_key(s, name, platforms))

    return make


@pytest.fixture
def api(server: str) -> Iterator[Callable[..., httpx.Client]]:
    """An HTTP client for the live server, as a user (token) or a provider (api_key)."""
    clients: list[httpx.Client] = []

    def make(token: str | None = None, api_key: str | None = None) -> httpx.Client:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if api_key:
            headers["x-api-key"] = api_key
        client = httpx.Client(base_url=server, headers=headers, timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client_factory(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Account], nmpi.Client]:
    """The unmodified nmpi client for an account, pointed at the live server."""
    # The client caches the token in ~/.hbptoken: keep it out of the real home.
    monkeypatch.setattr(nmpi.nmpi_user, "TOKENFILE", str(tmp_path / "hbptoken"))

    def make(account: Account) -> nmpi.Client:
        return nmpi.Client(
            token=account.token, job_service=server, user_info_endpoint=f"{server}/userinfo"
        )

    return make
