"""The ASGI application: `nmpi_job_queue.app:create_app` (a factory; settings from NMPI_*)."""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, limits
from .db import DATABASE_ERRORS, is_database_unavailable, make_engine, make_sessionmaker
from .identity import IdentityResolver, LocalIdentity, OidcIdentity
from .maintenance import MaintenanceMiddleware, ServiceStatusCache
from .observability import RequestContextMiddleware, configure_logging
from .oidc_login import OidcLogin
from .openapi import document_error_responses
from .routers import (
    auth,
    code_archives,
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
from .validation import reject_unstorable_values, validation_failed

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
    app.state.oidc_login = OidcLogin(settings) if settings.oidc_login_enabled else None
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
        code_archives,
        projects,
        sessions,
        statistics,
        auth,
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
    app.add_exception_handler(RequestValidationError, validation_failed)

    app.add_middleware(MaintenanceMiddleware, cache=status_cache)
    app.add_middleware(RequestLimitMiddleware)
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


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int, size: int | None) -> None:
        got = f"it has {size}" if size is not None else "it has more"
        super().__init__(
            413,
            detail=f"request body too large: at most {limit} bytes ({limit / limits.MIB:g} MiB) "
            f"are accepted here, {got}",
        )


class RequestLimitMiddleware:
    """413 for a body over its limit (limits.max_body_bytes), 414 for an over-long URL.

    A Content-Length over the limit is answered at once, before any of the body is read (the
    server then discards what still arrives, so the client reads the 413). A body without one
    (chunked) is counted as the application reads it, and refused as soon as it is over.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(
            scope.get("query_string", b"")
        )
        if url_bytes > limits.MAX_URL_BYTES:
            detail = f"URL too long: at most {limits.MAX_URL_BYTES} bytes, it has {url_bytes}"
            await JSONResponse({"detail": detail}, status_code=414)(scope, receive, send)
            return
        limit = limits.max_body_bytes(scope["method"], scope["path"])
        try:
            declared: int | None = int(Headers(scope=scope).get("content-length", ""))
        except ValueError:
            declared = None
        if declared is not None and declared > limit:
            error = BodyTooLargeError(limit, declared)
            await JSONResponse({"detail": error.detail}, status_code=413)(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI passes it through its body parsing untouched,
                    # and its handler answers 413 (the `except` below is for anything else).
                    raise BodyTooLargeError(limit, None)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLargeError as error:
            if started:
                raise
            await JSONResponse({"detail": error.detail}, status_code=413)(scope, receive, send)
