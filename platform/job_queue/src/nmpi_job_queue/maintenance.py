"""The maintenance switch: "down" answers 503 everywhere but /, "read-only" refuses writes.

The switch is a row in the database (set with `nmpi-job-queue maintenance`), so every worker
at every site sees the same state; each worker re-reads it at most every few seconds.
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from . import models
from .schemas.service import ServiceState

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Paths that answer whatever the switch says: service info and the operators' own endpoints
# (/readyz reads the switch itself, after the database: see routers/service.py).
ALWAYS_OPEN = {"/", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"}


class ServiceStatusCache:
    def __init__(self, maker: async_sessionmaker[AsyncSession], seconds: float) -> None:
        self.maker = maker
        self.seconds = seconds
        self._value = (ServiceState.ok, "")
        self._read_at = float("-inf")

    async def get(self) -> tuple[ServiceState, str]:
        if time.monotonic() - self._read_at < self.seconds:
            return self._value
        try:
            async with self.maker() as session:
                row = (
                    await session.execute(
                        select(models.ServiceStatus.status, models.ServiceStatus.message)
                    )
                ).first()
        except Exception:
            # No database: keep the last known state; /readyz reports the outage itself.
            return self._value
        self._value = (ServiceState(row.status), row.message) if row else (ServiceState.ok, "")
        self._read_at = time.monotonic()
        return self._value


class MaintenanceMiddleware:
    def __init__(self, app: ASGIApp, cache: ServiceStatusCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ALWAYS_OPEN:
            await self.app(scope, receive, send)
            return
        state, message = await self.cache.get()
        blocked = state is ServiceState.down or (
            state is ServiceState.read_only and scope["method"] in WRITE_METHODS
        )
        if blocked:
            detail = f"service is {state.value} for maintenance"
            if message:
                detail += f": {message}"
            response = JSONResponse(
                {"detail": detail}, status_code=503, headers={"Retry-After": "60"}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
