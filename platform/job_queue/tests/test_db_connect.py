"""Connecting through a multi-host URL when a host is silent, on real PostgreSQL.

A partitioned host drops packets: nothing refuses the connection, nothing answers. The silent
hosts here are TCP listeners that never accept: the kernel completes the handshake (or, once
the backlog is full, drops the SYN) and nobody ever answers PostgreSQL's start-up message.
Listed first, such a host must cost one per-host timeout, after which the next host is used.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from conftest import start_server, stop_server
from nmpi_job_queue.db import Connector, is_database_unavailable, make_engine, split_hosts
from nmpi_job_queue.settings import Settings
from pg_harness import PgCluster, cluster_root, free_port
from pydantic import ValidationError
from sqlalchemy import text

PER_HOST = 1.0
# Two shared cores: scheduling and a local PostgreSQL connection (auth, the read-write check).
MARGIN = 1.5


@pytest.fixture
def silent_host() -> Iterator[Callable[[], str]]:
    """`silent_host()` opens a listener that never accepts and returns its "host:port"."""
    sockets: list[socket.socket] = []

    def make() -> str:
        sock = socket.socket()
        sockets.append(sock)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        return f"127.0.0.1:{sock.getsockname()[1]}"

    yield make
    for sock in sockets:
        sock.close()


@pytest.fixture(scope="module")
def standby(pg: PgCluster, database_url: str) -> Iterator[PgCluster]:
    """A streaming replica of the session's PostgreSQL (read-only: a hot standby)."""
    root = cluster_root("nmpi-standby-")
    replica = pg.replica(root / "standby", free_port(), "standby")
    try:
        yield replica
    finally:
        replica.remove()
        shutil.rmtree(root, ignore_errors=True)


def url_of(*hosts: str) -> str:
    return f"postgresql://nmpi@{','.join(hosts)}/nmpi"


def local(cluster: PgCluster) -> str:
    return f"127.0.0.1:{cluster.port}"


def settings_for(url: str, whole: float = 10.0, per_host: float = PER_HOST) -> Settings:
    return Settings(
        database_url=url,
        database_connect_timeout=whole,
        database_connect_timeout_per_host=per_host,
    )


@pytest.mark.asyncio
async def test_a_silent_first_host_costs_one_per_host_timeout_not_the_whole(
    pg: PgCluster,
    database_url: str,
    silent_host: Callable[[], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    silent = silent_host()
    # The whole attempt may take 10 s: asyncpg alone would spend all of it on the silent host.
    engine = make_engine(settings_for(url_of(silent, local(pg))))
    caplog.set_level(logging.INFO, logger="nmpi_job_queue.db")
    try:
        started = time.monotonic()
        async with engine.connect() as first:
            port = await first.scalar(text("SELECT inet_server_port()"))
            took = time.monotonic() - started
            # A second connection while the first is in use: a new one, straight to the host
            # that answered (the silent one is not waited for again).
            again = time.monotonic()
            async with engine.connect() as second:
                assert await second.scalar(text("SELECT inet_server_port()")) == pg.port
                second_took = time.monotonic() - again
                pids = [await c.scalar(text("SELECT pg_backend_pid()")) for c in (first, second)]
            assert pids[0] != pids[1]
    finally:
        await engine.dispose()
    print(f"\nsilent first host: first query after {took:.2f}s, next connection {second_took:.2f}s")
    assert port == pg.port
    assert PER_HOST * 0.9 <= took < PER_HOST + MARGIN  # waited for the silent host, then moved on
    assert second_took < PER_HOST
    answered = [r.getMessage() for r in caplog.records if "answered" in r.getMessage()]
    assert answered == [
        f"database host {local(pg)} answered (skipped {silent}: no answer within 1 s)"
    ]


@pytest.mark.asyncio
async def test_asyncpg_alone_spends_its_whole_timeout_on_a_silent_first_host(
    pg: PgCluster, database_url: str, silent_host: Callable[[], str]
) -> None:
    """Why Connector exists: asyncpg's one timeout covers every host of the list. When this
    fails, asyncpg bounds each host itself and Connector's per-host loop may go."""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncpg.connect(dsn=url_of(silent_host(), local(pg)), timeout=2 * PER_HOST)
    assert time.monotonic() - started >= 2 * PER_HOST * 0.9


@pytest.mark.asyncio
async def test_only_a_writable_host_is_used_past_a_silent_one_and_a_standby(
    pg: PgCluster,
    standby: PgCluster,
    silent_host: Callable[[], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    silent = silent_host()
    connector = Connector(settings_for(url_of(silent, local(standby), local(pg))))
    caplog.set_level(logging.INFO, logger="nmpi_job_queue.db")
    started = time.monotonic()
    connection = await connector.connect()
    took = time.monotonic() - started
    try:
        assert await connection.fetchval("SELECT pg_is_in_recovery()") is False
        assert await connection.fetchval("SELECT inet_server_port()") == pg.port
    finally:
        await connection.close()
    assert took < PER_HOST + MARGIN
    assert connector.host == local(pg)
    (message,) = [r.getMessage() for r in caplog.records if "answered" in r.getMessage()]
    assert f"{silent}: no answer within" in message
    assert f"{local(standby)}: TargetServerAttributeNotMatched" in message


@pytest.mark.asyncio
async def test_no_writable_host_is_an_unavailable_database_naming_every_host(
    standby: PgCluster, silent_host: Callable[[], str]
) -> None:
    silent = silent_host()
    connector = Connector(settings_for(url_of(local(standby), silent)))
    started = time.monotonic()
    # The silent host's timeout is raised (a connection error wins over "not writable", as
    # with asyncpg), with a note for each host.
    with pytest.raises(TimeoutError) as raised:
        await connector.connect()
    assert time.monotonic() - started < PER_HOST + MARGIN
    assert is_database_unavailable(raised.value)
    notes = getattr(raised.value, "__notes__", [])
    assert any(local(standby) in note and "TargetServerAttribute" in note for note in notes)
    assert any(silent in note and "no answer within" in note for note in notes)


@pytest.mark.asyncio
async def test_the_whole_connect_timeout_bounds_all_hosts_together(
    pg: PgCluster, database_url: str, silent_host: Callable[[], str]
) -> None:
    # Two silent hosts: 1 s for the first, the 0.5 s left for the second, none for PostgreSQL.
    connector = Connector(
        settings_for(url_of(silent_host(), silent_host(), local(pg)), whole=1.5, per_host=1.0)
    )
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=rf"not tried: {local(pg)}"):
        await connector.connect()
    assert 1.5 * 0.9 <= time.monotonic() - started < 1.5 + MARGIN


@pytest.mark.asyncio
async def test_the_host_that_answered_is_tried_first_next_time(
    pg: PgCluster, database_url: str, silent_host: Callable[[], str]
) -> None:
    connector = Connector(settings_for(url_of(silent_host(), local(pg))))
    for _ in range(3):
        connection = await connector.connect()
        await connection.close()
    # Only the first attempt waited for the silent host: three more take no per-host timeout.
    started = time.monotonic()
    for _ in range(3):
        connection = await connector.connect()
        await connection.close()
    assert time.monotonic() - started < PER_HOST


def test_split_hosts_gives_one_url_per_host_in_order() -> None:
    url = "postgresql://u:p%40ss@db-castor:5432,[2001:db8::1]:5433,db-jusuf/nmpi?sslmode=require"
    assert split_hosts(url) == [
        ("db-castor:5432", "postgresql://u:p%40ss@db-castor:5432/nmpi?sslmode=require"),
        ("[2001:db8::1]:5433", "postgresql://u:p%40ss@[2001:db8::1]:5433/nmpi?sslmode=require"),
        ("db-jusuf", "postgresql://u:p%40ss@db-jusuf/nmpi?sslmode=require"),
    ]
    assert split_hosts("postgres://h1,h2/db") == [
        ("h1", "postgres://h1/db"),
        ("h2", "postgres://h2/db"),
    ]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@db:5432/nmpi",  # one host
        "postgresql:///nmpi?host=/run/postgresql",  # hosts from the query string
        "postgresql://u@h1,h2/nmpi?port=5432,5433",  # ports matched to hosts by asyncpg
    ],
)
def test_split_hosts_leaves_other_urls_whole(url: str) -> None:
    assert [whole for _, whole in split_hosts(url)] == [url]


def test_the_per_host_timeout_cannot_exceed_the_whole() -> None:
    with pytest.raises(ValidationError, match="DATABASE_CONNECT_TIMEOUT_PER_HOST"):
        Settings(
            database_url="postgresql://u@h1,h2/nmpi",
            database_connect_timeout=1.0,
            database_connect_timeout_per_host=2.0,
        )


def test_a_whole_timeout_too_short_for_the_hosts_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="nmpi_job_queue.db")
    Connector(settings_for("postgresql://u@h1,h2,h3/nmpi", whole=4.0, per_host=2.0))
    assert "leaves no time for the last of 3 hosts" in caplog.text


def test_readyz_answers_503_within_its_timeout_when_the_database_is_silent(
    silent_host: Callable[[], str], tmp_path: Path
) -> None:
    """A partitioned database must not make /readyz slow: nmpi-failover's probe (1.5 s) has to
    get the 503 as an answer. Measured before the fix: 5.0 s (the maintenance middleware's
    status read waited out the connect timeout first), 3.0 s in the lab."""
    url = url_of(silent_host(), silent_host())
    process, base = start_server(
        url,
        tmp_path / "server.log",
        NMPI_READYZ_TIMEOUT="1.0",
        NMPI_DATABASE_CONNECT_TIMEOUT="5",
        NMPI_DATABASE_CONNECT_TIMEOUT_PER_HOST="2",
    )
    try:
        took = []
        for _ in range(3):
            started = time.monotonic()
            reply = httpx.get(f"{base}/readyz", timeout=10)
            took.append(time.monotonic() - started)
            assert reply.status_code == 503
            assert "no answer within 1 s" in reply.json()["detail"]
        print(f"\n/readyz with a silent database: {', '.join(f'{t:.2f}' for t in took)} s")
        assert max(took) < 1.0 + MARGIN
    finally:
        stop_server(process)


@pytest.mark.asyncio
async def test_after_a_failover_the_promoted_host_is_reached_without_waiting_for_the_silent_one(
    pg: PgCluster, silent_host: Callable[[], str]
) -> None:
    """The surviving site's view of a leader-site loss: the old primary is silent, the local
    standby answers "not writable" until it is promoted. Once no host was writable, the one
    that answered is tried first, so the first connection after the promotion costs no
    per-host timeout of the silent host."""
    root = cluster_root("nmpi-promoted-")
    replica = pg.replica(root / "replica", free_port(), "promoted")
    try:
        silent = silent_host()
        connector = Connector(settings_for(url_of(silent, local(replica))))
        with pytest.raises(TimeoutError):
            await connector.connect()  # silent, then a standby: nothing writable
        replica.promote()
        started = time.monotonic()
        connection = await connector.connect()
        took = time.monotonic() - started
        await connection.close()
        print(
            f"\nfirst connection after the promotion: {took:.2f} s (per-host timeout {PER_HOST} s)"
        )
        assert connector.host == local(replica)
        assert took < PER_HOST * 0.5
    finally:
        replica.remove()
        shutil.rmtree(root, ignore_errors=True)
