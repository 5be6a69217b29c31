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
async def readyz(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """Ready: connected to a database that accepts writes, and not switched down."""
    try:
        async with asyncio.timeout(settings.readyz_timeout):
            read_only = await session.scalar(
                text("SELECT current_setting('transaction_read_only')")
            )
    except Exception as error:  # any failure to reach the database means not ready
        return JSONResponse(
            {"status": "unavailable", "detail": f"database unreachable: {type(error).__name__}"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if read_only == "on":
        return JSONResponse(
            {"status": "unavailable", "detail": "database is read-only (not the primary)"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    state, _ = await request.app.state.service_status.get()
    if state.value == "down":
        return JSONResponse(
            {"status": "unavailable", "detail": "service is down for maintenance"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return JSONResponse({"status": "ready", "service": state.value})


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
