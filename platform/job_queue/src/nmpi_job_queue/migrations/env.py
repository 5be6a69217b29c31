"""Alembic environment: runs migrations over the service's own (multi-host aware) engine."""

from __future__ import annotations

import asyncio

from alembic import context
from nmpi_job_queue.db import make_engine
from nmpi_job_queue.models import Base
from sqlalchemy.engine import Connection

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = make_engine(config.attributes["settings"])
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit(
        "offline (SQL script) migrations are not supported: run `nmpi-job-queue migrate`"
    )
asyncio.run(_run_online())
