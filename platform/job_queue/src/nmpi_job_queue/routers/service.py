"""Service information and the operators' endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, text

from .. import __version__, models
from ..dependencies import AppSettings, DbSession
from ..observability import QueueCollector, metrics_response
from ..schemas.service import ServerInfo

router = APIRouter(tags=["service"])


@router.get("/")
async def server_info(request: Request, settings: AppSettings) -> ServerInfo:
    state, message = await request.app.state.service_status.get()
    auth: dict[str, object] = {"mode": settings.identity_mode.value}
    if settings.oidc_userinfo_url:
        auth["userinfo_endpoint"] = settings.oidc_userinfo_url
    else:
        auth["userinfo_endpoint"] = "/userinfo"
    return ServerInfo(
        about="EBRAINS Neuromorphic Computing Platform job queue (nmpi-infra)",
        version="3",
        status=state.value + (f": {message}" if message else ""),
        links={"documentation": "/docs", "server_version": __version__},
        authentication=auth,
    )


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """Alive: the process answers. Says nothing about the database."""
    return {"status": "alive"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request, settings: AppSettings) -> Response:
    """Ready: connected to a database that accepts writes, and not switched down.

    Answers within readyz_timeout whatever the database does (nmpi-failover's probe must get
    "503, no writable database" as an answer during a failover, not a timeout): the check runs
    in a task of its own, with its own session, abandoned when late, so no stalled connection
    attempt holds the answer back. /readyz is also exempt from the maintenance middleware
    (maintenance.ALWAYS_OPEN), whose status read waited out the whole connect timeout (5 s)
    on a silent database before the handler ran; the switch is checked here, after the
    database.
    """
    check = asyncio.create_task(_read_only_setting(request))
    _background.add(check)
    check.add_done_callback(_forget)
    done, _ = await asyncio.wait({check}, timeout=settings.readyz_timeout)
    if not done:
        check.cancel()
        return _unavailable(f"database unreachable: no answer within {settings.readyz_timeout:g} s")
    error = check.exception()
    if error is not None:  # any failure to reach the database means not ready
        return _unavailable(f"database unreachable: {type(error).__name__}")
    if check.result() == "on":
        return _unavailable("database is read-only (not the primary)")
    state, _ = await request.app.state.service_status.get()
    if state.value == "down":
        return _unavailable("service is down for maintenance")
    return JSONResponse({"status": "ready", "service": state.value})


# Abandoned readiness checks, kept referenced until they end (asyncio holds tasks weakly).
_background: set[asyncio.Task[str | None]] = set()


def _forget(task: asyncio.Task[str | None]) -> None:
    _background.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a late failure is expected, not "never retrieved"


async def _read_only_setting(request: Request) -> str | None:
    async with request.app.state.sessionmaker() as session:
        result = await session.scalar(text("SELECT current_setting('transaction_read_only')"))
        return None if result is None else str(result)


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(
        {"status": "unavailable", "detail": detail},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(session: DbSession) -> Response:
    by_status: dict[str, int] = {}
    queue: dict[str, int] = {}
    try:
        for job_status, count in await session.execute(
            select(models.Job.status, func.count()).group_by(models.Job.status)
        ):
            by_status[job_status] = count
        for platform, count in await session.execute(
            select(models.Job.hardware_platform, func.count())
            .where(models.Job.status == "submitted")
            .group_by(models.Job.hardware_platform)
        ):
            queue[platform] = count
    except Exception:  # metrics still answer without a database; the gauges are left out
        return metrics_response()
    return metrics_response(QueueCollector(by_status, queue))
