"""The ASGI application: `nmpi_job_queue.app:create_app` (a factory; settings from NMPI_*)."""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from . import __version__
from .db import DATABASE_ERRORS, is_database_unavailable, make_engine, make_sessionmaker
from .identity import IdentityResolver, LocalIdentity, OidcIdentity
from .maintenance import MaintenanceMiddleware, ServiceStatusCache
from .observability import RequestContextMiddleware, configure_logging
from .openapi import document_error_responses
from .routers import (
    comments,
    identity,
    jobs,
    logs,
    output_data,
    projects,
    provider,
    service,
    sessions,
    statistics,
    tags,
)
from .settings import IdentityMode, Settings, get_settings
from .validation import reject_unstorable_values

log = logging.getLogger("nmpi_job_queue")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    engine = make_engine(settings)
    maker = make_sessionmaker(engine)
    resolver: IdentityResolver = (
        OidcIdentity(settings)
        if settings.identity_mode is IdentityMode.oidc
        else LocalIdentity(settings)
    )
    status_cache = ServiceStatusCache(maker, settings.service_status_cache_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "starting", extra={"version": __version__, "identity": settings.identity_mode.value}
        )
        # Everything built so far lives as long as the worker: keep it out of the cyclic GC's
        # full collections, which otherwise cost ~45 ms every hundred list requests (p99).
        gc.collect()
        gc.freeze()
        yield
        await engine.dispose()

    app = FastAPI(
        title="NMPI job queue",
        version=__version__,
        description="Job-queue API of the EBRAINS Neuromorphic Computing Platform (v3 contract).",
        lifespan=lifespan,
        redirect_slashes=True,
        dependencies=[Depends(reject_unstorable_values)],  # see validation.py
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = maker
    app.state.identity = resolver
    app.state.service_status = status_cache

    for module in (
        service,
        identity,
        provider,
        jobs,
        logs,
        comments,
        tags,
        output_data,
        projects,
        sessions,
        statistics,
    ):
        app.include_router(module.router)
    document_error_responses(app)

    @app.exception_handler(Exception)
    async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
        if is_database_unavailable(error):
            log.warning("database unavailable", extra={"error": repr(error)[:500]})
            return JSONResponse(
                {"detail": "database unavailable (failover in progress?); retry shortly"},
                status_code=503,
                headers={"Retry-After": "2"},
            )
        log.error("unhandled error", exc_info=error)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    # Database errors get the same handler, registered per class so that Starlette's
    # ExceptionMiddleware answers them and is done. The `Exception` handler alone runs in
    # ServerErrorMiddleware, which re-raises after answering: uvicorn then logs a traceback for
    # every expected 503 and closes the keep-alive connection, so a client's next request on it
    # fails with "connection reset" during a failover.
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, database_unavailable)

    app.add_middleware(MaintenanceMiddleware, cache=status_cache)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(CollapseSlashesMiddleware)
    return app


class CollapseSlashesMiddleware:
    """'//projects/' -> '/projects/'.

    The nmpi client doubles the slash when its job_service URL ends in '/'.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            path = re.sub("/{2,}", "/", scope["path"])
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)
