"""Database engine and sessions.

The URL may list several hosts (libpq style); asyncpg connects to the first one that accepts
writes (target_session_attrs=read-write). When the primary moves, connections to the old one
fail or turn read-only: both count as disconnects, so SQLAlchemy drops the whole pool and the
next request connects to the new primary. Nothing needs a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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


def make_engine(settings: Settings) -> AsyncEngine:
    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(
            dsn=settings.database_url,
            timeout=settings.database_connect_timeout,
            command_timeout=settings.database_command_timeout,
            target_session_attrs=settings.database_target_session_attrs,
            server_settings={
                "application_name": "nmpi-job-queue",
                "statement_timeout": str(settings.database_statement_timeout_ms),
            },
        )

    engine = create_async_engine(
        "postgresql+asyncpg://",
        async_creator=connect,
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


async def session_scope(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        yield session


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
