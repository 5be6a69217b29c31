"""JSON logs with a request id, and Prometheus metrics."""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
import uuid

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("nmpi_job_queue")
access_log = logging.getLogger("nmpi_job_queue.access")

HTTP_REQUESTS = Counter(
    "nmpi_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "nmpi_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log is replaced by ours (it knows neither routes nor request ids).
    logging.getLogger("uvicorn.access").disabled = True


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestContextMiddleware:
    """Request id in, request id out, one JSON access line and metrics per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = incoming or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status_code)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            if route != "/metrics":
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "route": route,
                        "status": status_code,
                        "duration_ms": round(elapsed * 1000, 2),
                        "caller": (scope.get("state") or {}).get("caller"),
                    },
                )
            request_id_var.reset(token)


def metrics_response(extra: Collector | None = None) -> Response:
    """All workers' metrics (prometheus multiprocess mode under gunicorn) plus `extra`."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY if extra is None else _merged(REGISTRY, extra)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    if extra is not None:
        registry.register(extra)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _merged(base: CollectorRegistry, extra: Collector) -> CollectorRegistry:
    class Both(CollectorRegistry):
        def collect(self):  # type: ignore[no-untyped-def]
            yield from base.collect()
            yield from extra.collect()

    return Both(auto_describe=False)


class QueueCollector(Collector):
    """Jobs by status and queue length per platform, read from the database at scrape time."""

    def __init__(self, by_status: dict[str, int], queue: dict[str, int]) -> None:
        self.by_status = by_status
        self.queue = queue

    def collect(self):  # type: ignore[no-untyped-def]
        jobs = GaugeMetricFamily("nmpi_jobs", "Jobs by status", labels=["status"])
        for status, count in sorted(self.by_status.items()):
            jobs.add_metric([status], count)
        yield jobs
        queue = GaugeMetricFamily(
            "nmpi_queue_length", "Jobs waiting (submitted) per platform", labels=["platform"]
        )
        for platform, count in sorted(self.queue.items()):
            queue.add_metric([platform], count)
        yield queue
