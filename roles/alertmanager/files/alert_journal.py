#!/usr/bin/env python3
"""A webhook receiver for Alertmanager that writes every notification to the journal.

Each alert of a notification becomes one JSON line on stdout (the unit's journal, shipped to
the central log server with everything else): receiver, status, alert name, labels,
annotations, start and end. A record of what was notified, searchable with the central logs
(scripts/nmpi-logs --service alert-journal), and the lab's receiver: the tests read it.

    alert_journal.py --listen 127.0.0.1:9097      (roles/alertmanager runs it under systemd)

Alertmanager posts to http://127.0.0.1:9097/<receiver>. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1024 * 1024  # Alertmanager's notifications are a few kB; refuse anything huge.


def lines_of(receiver: str, notification: dict[str, Any]) -> list[str]:
    """One JSON line per alert of an Alertmanager webhook notification (version 4)."""
    alerts = notification.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("not an Alertmanager notification: no list 'alerts'")
    out = []
    for alert in alerts:
        if not isinstance(alert, dict):
            raise ValueError("an alert is not an object")
        labels = alert.get("labels") or {}
        out.append(
            json.dumps(
                {
                    "level": "warning" if alert.get("status") == "firing" else "info",
                    "message": f"alert {labels.get('alertname', '?')} {alert.get('status', '?')}",
                    "receiver": receiver,
                    "status": alert.get("status"),
                    "alertname": labels.get("alertname"),
                    "labels": labels,
                    "annotations": alert.get("annotations") or {},
                    "starts_at": alert.get("startsAt"),
                    "ends_at": alert.get("endsAt"),
                },
                sort_keys=True,
            )
        )
    return out


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        receiver = self.path.strip("/") or "default"
        size = int(self.headers.get("Content-Length") or 0)
        if not receiver.replace("-", "").replace("_", "").isalnum() or len(receiver) > 64:
            self._answer(400, "the path must be /<receiver name>")
            return
        if not 0 < size <= MAX_BODY:
            self._answer(413 if size > MAX_BODY else 400, f"a body of 1 to {MAX_BODY} bytes")
            return
        try:
            lines = lines_of(receiver, json.loads(self.rfile.read(size)))
        except ValueError as exc:
            self._answer(400, str(exc))
            return
        for line in lines:
            print(line, flush=True)
        self._answer(200, "ok")

    def _answer(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the notifications are the log; no access lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:9097", help="address:port (loopback)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        parser.error(f"--listen {args.listen!r}: give address:port")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    print(json.dumps({"level": "info", "message": f"listening on {args.listen}"}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
