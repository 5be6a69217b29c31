"""gunicorn settings for `nmpi-job-queue serve` (production: several uvicorn workers)."""

from __future__ import annotations

import os

from prometheus_client import multiprocess

bind = os.environ.get("NMPI_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("NMPI_WORKERS", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
# Requests are short; a worker stuck this long is restarted.
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = None  # the application writes its own JSON access log
errorlog = "-"
# No gunicornc control socket: workers are managed by restarting the container or unit (the
# socket would also need a writable home, which the image's user does not have).
control_socket_disable = True
forwarded_allow_ips = os.environ.get("NMPI_FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server: object, worker: object) -> None:
    # Drop a dead worker's live gauges from the shared Prometheus files.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined,no-untyped-call]
