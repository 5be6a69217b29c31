"""Database engine and sessions.

The URL may list several hosts (libpq style); the service connects to the first one that accepts
writes (target_session_attrs=read-write). Each host gets its own bounded attempt (libpq's
meaning of connect_timeout): asyncpg's own multi-host connect has one timeout for all hosts,
so a silent first host (packets dropped, as in a partition) used it up and the second host was
never tried. The host that answered last is tried first next time, so a long-lost host costs
one bounded attempt, not one per new connection. When the primary moves, connections to the
old one fail or turn read-only: both count as disconnects, so SQLAlchemy drops the whole pool
and the next request connects to the new primary. Nothing needs a restart.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .settings import Settings

# SQLSTATEs meaning "this server cannot take writes (any more)": read_only_sql_transaction,
# admin_shutdown, crash_shutdown, cannot_connect_now, and the connection exception class.
_FAILOVER_SQLSTATES = {"25006", "57P01", "57P02", "57P03"}


def _sqlstate(error: BaseException | None) -> str | None:
    while error is not None:
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str):
            return state
        error = error.__cause__
    return None


def _is_failover_error(context: ExceptionContext) -> bool:
    if isinstance(context.original_exception, TimeoutError):
        return True  # a silent server (partition): the connection cannot be trusted any more
    state = _sqlstate(context.original_exception)
    return state is not None and (state in _FAILOVER_SQLSTATES or state.startswith("08"))


log = logging.getLogger("nmpi_job_queue.db")

# Failures after which the next host is tried (as libpq does): the host did not answer in time
# or refused (OSError, TimeoutError among them), is not writable, is starting up or shutting
# down, or dropped the connection during start-up. Anything else (a wrong password, a missing
# database) is a configuration error that every member would report alike: it is raised at once.
_NEXT_HOST_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.TargetServerAttributeNotMatched,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


def split_hosts(url: str) -> list[tuple[str, str]]:
    """[(host, url of that host alone)] for each host a libpq-style URL lists, in order.

    `postgresql://u:p@h1:5432,h2:5433/db?x=y` gives ("h1:5432", "postgresql://u:p@h1:5432/db?x=y")
    and the same for h2. A URL whose hosts or ports come from elsewhere (its query string, the
    PG* environment) is returned whole, as its one "host" (asyncpg then reads them as usual).
    """
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    # asyncpg splits the user info from the hosts at the first "@"; so does this.
    auth, at, hostspec = parts.netloc.partition("@")
    if not at:
        auth, hostspec = "", parts.netloc
    hosts = [h for h in hostspec.split(",") if h]
    if len(hosts) < 2 or "host" in query or "port" in query:
        return [(hostspec or "(default host)", url)]
    prefix = f"{auth}@" if at else ""
    return [
        (urllib.parse.unquote(h), parts._replace(netloc=f"{prefix}{h}").geturl()) for h in hosts
    ]


class Connector:
    """Opens one asyncpg connection to a host of the URL that matches target_session_attrs.

    Hosts are tried one after the other, each for at most
    `database_connect_timeout_per_host` seconds, all of them within
    `database_connect_timeout`: the host that answered last first (or, when none was
    writable, one that answered rather than a silent one), then the others in the URL's
    order. `host` is the host that answered last (None before the first connection).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hosts = split_hosts(settings.database_url)
        self.host: str | None = None
        self._preferred = 0  # index in self.hosts of the host that answered last
        # prefer-standby picks among several answering hosts: asyncpg's own multi-host logic.
        self._native = (
            len(self.hosts) < 2 or settings.database_target_session_attrs == "prefer-standby"
        )
        whole, each = settings.database_connect_timeout, settings.database_connect_timeout_per_host
        if not self._native and (len(self.hosts) - 1) * each >= whole:
            log.warning(
                "NMPI_DATABASE_CONNECT_TIMEOUT (%g s) leaves no time for the last of %d hosts "
                "when the others are silent (%g s each): raise it",
                whole,
                len(self.hosts),
                each,
            )

    async def _connect_to(self, url: str, timeout: float) -> asyncpg.Connection:
        settings = self.settings
        return await asyncpg.connect(
            dsn=url,
            timeout=timeout,
            command_timeout=settings.database_command_timeout,
            target_session_attrs=settings.database_target_session_attrs,
            server_settings={
                "application_name": "nmpi-job-queue",
                "statement_timeout": str(settings.database_statement_timeout_ms),
            },
        )

    async def connect(self) -> asyncpg.Connection:
        settings = self.settings
        if self._native:
            return await self._connect_to(settings.database_url, settings.database_connect_timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.database_connect_timeout
        order = [self._preferred] + [i for i in range(len(self.hosts)) if i != self._preferred]
        failures: list[tuple[str, BaseException, str]] = []  # host, error, what happened
        for position, index in enumerate(order):
            host, url = self.hosts[index]
            budget = min(settings.database_connect_timeout_per_host, deadline - loop.time())
            if budget <= 0:
                untried = ", ".join(self.hosts[i][0] for i in order[position:])
                raise _with_notes(
                    TimeoutError(
                        f"no database host answered within {settings.database_connect_timeout:g} s"
                        f" (not tried: {untried})"
                    ),
                    failures,
                )
            try:
                connection = await self._connect_to(url, budget)
            except _NEXT_HOST_ERRORS as error:
                failures.append((host, error, _describe(error, budget)))
                log.debug("database host %s failed: %s", host, failures[-1][2])
                continue
            self._preferred = index
            if host != self.host or failures:
                # Which host answered, and why the ones before it did not: once per change.
                skipped = "; ".join(f"{h}: {what}" for h, _, what in failures)
                log.info(
                    "database host %s answered%s",
                    host,
                    f" (skipped {skipped})" if skipped else "",
                    extra={"database_host": host, "skipped_hosts": skipped},
                )
            self.host = host
            return connection
        # Every host failed. Try first next time a host that answered (a standby: the one to be
        # promoted) rather than a silent one (partitioned): after a failover the new primary is
        # then reached at once instead of after the silent host's per-host timeout.
        answered = [i for i, (_, e, _) in zip(order, failures, strict=True) if not _silent(e)]
        if answered and _silent(failures[0][1]):
            self._preferred = answered[0]
        # Like asyncpg: a connection error if there was one (the last), else
        # "no host matched" (every host answered, none writable). The notes name each host.
        errors = [e for _, e, _ in failures]
        raised = next(
            (
                e
                for e in reversed(errors)
                if not isinstance(e, asyncpg.exceptions.TargetServerAttributeNotMatched)
            ),
            errors[-1],
        )
        raise _with_notes(raised, failures)


def _silent(error: BaseException) -> bool:
    return isinstance(error, TimeoutError)


def _describe(error: BaseException, budget: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {budget:.3g} s"
    return f"{type(error).__name__}: {error}".rstrip(": ")


def _with_notes(
    error: BaseException, failures: list[tuple[str, BaseException, str]]
) -> BaseException:
    """`error` with a note per host that failed (the error's own host included)."""
    for host, _, what in failures:
        error.add_note(f"database host {host}: {what}")
    return error


def make_engine(settings: Settings) -> AsyncEngine:
    connector = Connector(settings)
    engine = create_async_engine(
        "postgresql+asyncpg://",
        async_creator=connector.connect,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        pool_recycle=300,
    )

    @event.listens_for(engine.sync_engine, "handle_error")
    def _treat_failover_as_disconnect(context: ExceptionContext) -> None:
        if _is_failover_error(context):
            context.is_disconnect = True  # invalidates every pooled connection

    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# Exception classes that may mean "no database right now": the app routes them to a handler
# that asks is_database_unavailable (503) and otherwise answers 500.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    PoolTimeout,
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
)


def is_database_unavailable(error: BaseException) -> bool:
    """True for errors that mean "no writable database right now" rather than a bug."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, PoolTimeout):  # every pooled connection busy: overloaded, not a bug
        return True
    if isinstance(error, OSError | TimeoutError | asyncpg.exceptions.PostgresConnectionError):
        return True
    cause: Any = getattr(error, "orig", None) or error.__cause__
    # Every listed host answered but none accepts writes (only standbys are up, e.g. between
    # the old primary's loss and the promotion): asyncpg raises TargetServerAttributeNotMatched,
    # which SQLAlchemy wraps as InternalError, its original as the cause of the wrapper.
    link: BaseException | None = error
    for _ in range(5):  # a short chain: wrapper -> adapted error -> asyncpg's
        if link is None:
            break
        if isinstance(link, asyncpg.exceptions.TargetServerAttributeNotMatched):
            return True
        link = getattr(link, "orig", None) or link.__cause__
    state = _sqlstate(cause) if cause is not None else None
    return state is not None and (state in _FAILOVER_SQLSTATES or state.startswith("08"))
