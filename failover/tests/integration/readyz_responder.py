"""A stand-in for a site's web tier when the job-queue image is not built: HTTPS /readyz.

Runs inside the site's network (in the nmpi/patroni image, which has python3 and psql) and
answers like the job-queue API's /readyz: 200 when a connection through the multi-host DSN with
target_session_attrs=read-write works from here (the database leader is reachable from this
site), else 503. /healthz answers 200 while the process runs. Standard library only.

Environment: NMPI_READYZ_DSN (libpq DSN), NMPI_READYZ_CERT and NMPI_READYZ_KEY (PEM files),
NMPI_READYZ_PORT (8443).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DSN = os.environ["NMPI_READYZ_DSN"]


def database_writable() -> tuple[bool, str]:
    try:
        result = subprocess.run(
            ["psql", DSN, "-XAtc", "SELECT current_setting('transaction_read_only')"],
            capture_output=True,
            text=True,
            timeout=8,
            check=False,
            env={**os.environ, "PGCONNECT_TIMEOUT": "2"},
        )
    except subprocess.TimeoutExpired:
        return False, "database unreachable: timeout"
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return False, f"database unreachable: {lines[-1] if lines else result.returncode}"
    if result.stdout.strip() != "off":
        return False, "database is read-only (not the primary)"
    return True, "ready"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"status": "alive"})
        elif self.path == "/readyz":
            ok, detail = database_writable()
            if ok:
                self._send(200, {"status": "ready"})
            else:
                self._send(503, {"status": "unavailable", "detail": detail})
        else:
            self._send(404, {"detail": "not found"})

    def _send(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["NMPI_READYZ_CERT"], os.environ["NMPI_READYZ_KEY"])
    port = int(os.environ.get("NMPI_READYZ_PORT", "8443"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    # The handshake happens in the request's thread: a silent client cannot block accept().
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
