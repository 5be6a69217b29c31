"""roles/alertmanager/files/alert_journal.py: Alertmanager's notifications as journal lines."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from roles.alertmanager.files import alert_journal

NOTIFICATION = {
    "version": "4",
    "status": "firing",
    "receiver": "page",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "SiteDown", "site": "castor", "severity": "page"},
            "annotations": {"summary": "Site castor is down"},
            "startsAt": "2026-12-06T15:40:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
        },
        {"status": "resolved", "labels": {"alertname": "HostDown"}, "annotations": {}},
    ],
}


def test_one_line_per_alert_with_its_name_status_and_labels() -> None:
    lines = [json.loads(x) for x in alert_journal.lines_of("page", NOTIFICATION)]
    assert [(x["alertname"], x["status"], x["level"]) for x in lines] == [
        ("SiteDown", "firing", "warning"),
        ("HostDown", "resolved", "info"),
    ]
    assert lines[0]["receiver"] == "page"
    assert lines[0]["labels"]["site"] == "castor"
    assert lines[0]["message"] == "alert SiteDown firing"


@pytest.mark.parametrize("body", [{}, {"alerts": "x"}, {"alerts": ["x"]}])
def test_a_body_that_is_no_notification_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not"):
        alert_journal.lines_of("page", body)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), alert_journal.Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_receiver_prints_the_lines_and_refuses_bad_posts(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post(f"{server}/ticket", json.dumps(NOTIFICATION).encode()) == 200
    printed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["receiver"] for x in printed] == ["ticket", "ticket"]
    assert post(f"{server}/ticket", b"not json") == 400
    assert post(f"{server}/../etc", json.dumps(NOTIFICATION).encode()) == 400
    assert capsys.readouterr().out == ""
