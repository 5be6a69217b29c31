"""The ASGI application: `nmpi_job_queue.app:create_app` (a factory; settings from NMPI_*)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from . import __version__
from .db import is_database_unavailable, make_engine, make_sessionmaker
from .identity import IdentityResolver, LocalIdentity, OidcIdentity
from .maintenance import MaintenanceMiddleware, ServiceStatusCache
from .observability import RequestContextMiddleware, configure_logging
from .routers import identity, job_details, jobs, projects, provider, service, sessions, statistics
from .settings import IdentityMode, Settings, get_settings

log = logging.getLogger("nmpi_job_queue")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    engine = make_engine(settings)
    maker = make_sessionmaker(engine)
    resolver: IdentityResolver = (
        OidcIdentity(settings) if settings.identity_mode is IdentityMode.oidc else LocalIdentity(settings)
    )
    status_cache = ServiceStatusCache(maker, settings.service_status_cache_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("starting", extra={"version": __version__, "identity": settings.identity_mode.value})
        yield
        await engine.dispose()

    app = FastAPI(
        title="NMPI job queue",
        version=__version__,
        description="Job-queue API of the EBRAINS Neuromorphic Computing Platform (v3 contract).",
        lifespan=lifespan,
        redirect_slashes=True,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = maker
    app.state.identity = resolver
    app.state.service_status = status_cache

    for module in (service, identity, provider, jobs, job_details, projects, sessions, statistics):
        app.include_router(module.router)

    @app.exception_handler(Exception)
    async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
        if is_database_unavailable(error):
            log.warning("database unavailable", extra={"error": repr(error)[:500]})
            return JSONResponse(
                {"detail": "database unavailable (failover in progress?); retry shortly"},
                status_code=503,
                headers={"Retry-After": "2"},
            )
        log.exception("unhandled error")
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    app.add_middleware(MaintenanceMiddleware, cache=status_cache)
    app.add_middleware(RequestContextMiddleware)
    return app
