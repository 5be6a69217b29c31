"""Identity: the local userinfo endpoint, and OIDC mode against a userinfo provider."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from conftest import Account, start_server, stop_server


def test_local_userinfo_shape(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    alice = new_user(roles={"shared-collab": "viewer"})
    info = api(alice.token).get("/userinfo").json()
    assert info["preferred_username"] == alice.username
    assert info["sub"] == alice.username
    assert sorted(info["roles"]["team"]) == sorted(
        [f"collab-{alice.collab}-editor", "collab-shared-collab-viewer"]
    )
    # Ids, as the reference lists them: the collabs where alice may submit (not shared-collab).
    assert api(alice.token).get("/collabs/").json() == [alice.collab]


class _Userinfo(http.server.BaseHTTPRequestHandler):
    """An OIDC provider's userinfo endpoint, as EBRAINS IAM answers it."""

    users: ClassVar[dict[str, dict[str, Any]]] = {
        "token-carol": {
            "sub": "3f2a-carol",
            "preferred_username": "carol",
            "roles": {"team": ["collab-oidc-lab-editor"]},
        },
        "token-dave": {"sub": "9c1b-dave", "preferred_username": "dave", "roles": {"team": []}},
    }
    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        user = self.users.get(token)
        body = json.dumps(user or {"error": "invalid_token"}).encode()
        self.send_response(200 if user else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def oidc_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    idp = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Userinfo)
    threading.Thread(target=idp.serve_forever, daemon=True).start()
    process, base = start_server(
        database_url,
        tmp_path / "oidc-server.log",
        NMPI_IDENTITY_MODE="oidc",
        NMPI_OIDC_USERINFO_URL=f"http://127.0.0.1:{idp.server_address[1]}/userinfo",
        NMPI_OIDC_CACHE_SECONDS="60",
    )
    yield base
    stop_server(process)
    idp.shutdown()


def test_oidc_mode(oidc_server: str) -> None:
    carol = httpx.Client(base_url=oidc_server, headers={"Authorization": "Bearer token-carol"})
    dave = httpx.Client(base_url=oidc_server, headers={"Authorization": "Bearer token-dave"})
    job = {"code": "x", "collab": "oidc-lab", "hardware_platform": "Demo"}
    created = carol.post("/jobs/", json=job)
    assert created.status_code == 201, created.text
    assert created.json()["user_id"] == "carol"
    assert dave.post("/jobs/", json=job).status_code == 404  # no role in oidc-lab
    assert dave.get(f"/jobs/{created.json()['id']}").status_code == 404
    bad = httpx.get(f"{oidc_server}/jobs/", headers={"Authorization": "Bearer forged"})
    assert bad.status_code == 401
    # The userinfo endpoint is the provider's in this mode, not the service's.
    assert carol.get("/userinfo").status_code == 404
    # Tokens are cached: more requests do not mean more calls to the provider.
    before = _Userinfo.calls
    for _ in range(5):
        assert carol.get("/jobs/").status_code == 200
    assert _Userinfo.calls == before
