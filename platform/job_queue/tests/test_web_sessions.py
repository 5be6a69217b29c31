"""Browser sessions: a token exchanged for an HttpOnly cookie (POST /auth/session), the cookie
as the caller's identity, the CSRF header on writes, sign-out, revocation and both timeouts.

The cookie is Secure and the test server plain HTTP, so httpx's cookie jar would not send it
back: the tests send the `Cookie` header themselves, as a browser on https would.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psycopg
import pytest
from conftest import Account, run_admin, start_server, stop_server
from nmpi_job_queue import admin
from nmpi_job_queue.web_sessions import COOKIE, CSRF_HEADER

CSRF = {CSRF_HEADER: "1"}
JOB = {"code": "print(1)", "hardware_platform": "Demo"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def set_cookie(reply: httpx.Response) -> dict[str, str]:
    """The attributes of the reply's one Set-Cookie (names lower-cased; flags map to '')."""
    headers = reply.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    first, *attributes = (part.strip() for part in headers[0].split(";"))
    name, _, value = first.partition("=")
    parsed = {"name": name, "value": value}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        parsed[key.lower()] = val
    return parsed


def sign_in(base: str, token: str) -> tuple[httpx.Response, str]:
    reply = httpx.post(f"{base}/auth/session", json={"token": token}, headers=CSRF, timeout=30)
    secret = set_cookie(reply)["value"] if reply.status_code == 200 else ""
    return reply, secret


def browser(base: str, secret: str) -> httpx.Client:
    """What the web app's requests carry: the cookie only (add CSRF per request)."""
    return httpx.Client(base_url=base, headers={"Cookie": f"{COOKIE}={secret}"}, timeout=30)


def session_rows(database_url: str, secret: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT username, token_sha256, access_token, created, last_seen, expires "
            "FROM web_sessions WHERE secret_sha256 = %s",
            (sha256(secret),),
        ).fetchall()


def test_auth_config_in_local_mode(server: str) -> None:
    reply = httpx.get(f"{server}/auth/config")
    assert reply.status_code == 200
    assert reply.json() == {"identity_mode": "local", "login_url": None}


def test_sign_in_sets_a_host_only_secure_http_only_cookie(
    server: str, database_url: str, new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    reply, secret = sign_in(server, alice.token)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"username": alice.username, "is_admin": False, "identity_mode": "local"}
    cookie = set_cookie(reply)
    assert cookie["name"] == "__Host-nmpi_session"
    assert {"httponly", "secure"} <= cookie.keys()
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert "domain" not in cookie  # __Host-: no Domain, or browsers refuse it
    assert cookie["max-age"] == str(12 * 3600)  # the absolute lifetime (default 12 h)
    assert len(secret) >= 43
    assert secret != alice.token
    # The database keeps digests: of the cookie's secret, and of the token it was made from.
    [(username, token_sha256, access_token, created, last_seen, expires)] = session_rows(
        database_url, secret
    )
    assert (username, token_sha256, access_token) == (alice.username, sha256(alice.token), None)
    assert created == last_seen
    assert (expires - created).total_seconds() == pytest.approx(12 * 3600)


def test_sign_in_refuses_what_is_not_a_user_token(
    server: str, new_user: Callable[..., Account], new_provider: Callable[[list[str]], str]
) -> None:
    bad, _ = sign_in(server, "not-a-token")
    assert bad.status_code == 401
    assert bad.json()["detail"] == "invalid or expired token"
    assert "set-cookie" not in bad.headers
    key = new_provider(["Demo"])
    provider, _ = sign_in(server, key)
    assert provider.status_code == 401
    assert "provider" in provider.json()["detail"]
    empty = httpx.post(f"{server}/auth/session", json={"token": ""}, headers=CSRF)
    assert empty.status_code == 422
    # Without the CSRF header no other site can sign the browser in (as someone else).
    alice = new_user()
    forged = httpx.post(f"{server}/auth/session", json={"token": alice.token})
    assert forged.status_code == 403
    assert CSRF_HEADER in forged.json()["detail"]


def test_me_with_and_without_the_cookie(server: str, new_user: Callable[..., Account]) -> None:
    nobody = httpx.get(f"{server}/auth/me")
    assert nobody.status_code == 401
    alice = new_user()
    _, secret = sign_in(server, alice.token)
    with browser(server, secret) as web:
        me = web.get("/auth/me")
        assert me.status_code == 200
        assert me.json() == {
            "username": alice.username,
            "is_admin": False,
            "identity_mode": "local",
        }
    admin_user = new_user(roles={"neuromorphic-platform-admin": "editor"})
    _, admin_secret = sign_in(server, admin_user.token)
    with browser(server, admin_secret) as web:
        assert web.get("/auth/me").json()["is_admin"] is True
    forged = httpx.get(f"{server}/auth/me", headers={"Cookie": f"{COOKIE}=made-up"})
    assert forged.status_code == 401
    assert "sign in again" in forged.json()["detail"]
    assert set_cookie(forged)["max-age"] == "0"  # the browser drops the dead cookie


def test_cookie_writes_need_the_csrf_header(server: str, new_user: Callable[..., Account]) -> None:
    alice = new_user()
    _, secret = sign_in(server, alice.token)
    with browser(server, secret) as web:
        refused = web.post("/jobs/", json={**JOB, "collab": alice.collab})
        assert refused.status_code == 403
        assert refused.json()["detail"].startswith(f"the header '{CSRF_HEADER}: 1' is required")
        wrong = web.post("/jobs/", json={**JOB, "collab": alice.collab}, headers={CSRF_HEADER: "0"})
        assert wrong.status_code == 403
        created = web.post("/jobs/", json={**JOB, "collab": alice.collab}, headers=CSRF)
        assert created.status_code == 201, created.text
        assert created.json()["user_id"] == alice.username
        job_id = created.json()["id"]
        # Reads need no header.
        assert web.get(f"/jobs/{job_id}").status_code == 200
        assert web.delete(f"/jobs/{job_id}").status_code == 403
        assert web.delete(f"/jobs/{job_id}", headers=CSRF).status_code == 204


def test_sign_out_ends_the_session(
    server: str, database_url: str, new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    _, secret = sign_in(server, alice.token)
    with browser(server, secret) as web:
        assert web.delete("/auth/session").status_code == 403  # no other site may sign out
        out = web.delete("/auth/session", headers=CSRF)
        assert out.status_code == 204
        cleared = set_cookie(out)
        assert (cleared["name"], cleared["value"], cleared["max-age"]) == (COOKIE, "", "0")
        assert session_rows(database_url, secret) == []
        assert web.get("/auth/me").status_code == 401
        assert web.delete("/auth/session", headers=CSRF).status_code == 204  # idempotent
    assert httpx.delete(f"{server}/auth/session").status_code == 204  # no cookie at all
    # The token itself still works: signing out ends the session only.
    again, _ = sign_in(server, alice.token)
    assert again.status_code == 200


def test_signing_in_again_replaces_the_session(
    server: str, database_url: str, new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    _, first = sign_in(server, alice.token)
    reply = httpx.post(
        f"{server}/auth/session",
        json={"token": alice.token},
        headers={**CSRF, "Cookie": f"{COOKIE}={first}"},
    )
    assert reply.status_code == 200
    assert session_rows(database_url, first) == []
    assert len(session_rows(database_url, set_cookie(reply)["value"])) == 1


def test_revoking_the_token_ends_its_sessions(
    server: str, database_url: str, new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    _, secret = sign_in(server, alice.token)
    with browser(server, secret) as web:
        assert web.get("/auth/me").status_code == 200
        assert run_admin(database_url, lambda s: admin.revoke_tokens(s, alice.username)) == 1
        assert session_rows(database_url, secret) == []  # at once, not after a cache's time
        assert web.get("/auth/me").status_code == 401
        assert web.get("/jobs/").status_code == 401


def test_bearer_and_api_key_requests_are_unaffected(
    server: str, new_user: Callable[..., Account], new_provider: Callable[[list[str]], str]
) -> None:
    alice, bob = new_user(), new_user()
    _, bob_secret = sign_in(server, bob.token)
    bearer = {"Authorization": f"Bearer {alice.token}"}
    with httpx.Client(base_url=server, headers=bearer, timeout=30) as client:
        # No CSRF header needed, and a cookie beside the token is ignored: the token decides.
        created = client.post(
            "/jobs/", json={**JOB, "collab": alice.collab}, headers={"Cookie": f"{COOKIE}=x"}
        )
        assert created.status_code == 201, created.text
        me = client.get("/auth/me", headers={"Cookie": f"{COOKIE}={bob_secret}"})
        assert me.json()["username"] == alice.username
    bad = httpx.get(
        f"{server}/jobs/",
        headers={"Authorization": "Bearer forged", "Cookie": f"{COOKIE}={bob_secret}"},
    )
    assert bad.status_code == 401  # a bad token is not rescued by a good cookie
    key = new_provider(["Demo"])
    site = httpx.get(f"{server}/jobs/next/Demo", headers={"x-api-key": key})
    assert site.status_code not in (401, 403), site.text


def test_last_seen_is_written_at_most_once_a_minute(
    server: str, database_url: str, new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    _, secret = sign_in(server, alice.token)
    [before] = session_rows(database_url, secret)
    with browser(server, secret) as web:
        for _ in range(3):
            assert web.get("/auth/me").status_code == 200
    [after] = session_rows(database_url, secret)
    assert after[4] == before[4]


def test_a_new_session_deletes_expired_ones(
    server: str, database_url: str, new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    _, old = sign_in(server, alice.token)
    _, idle = sign_in(server, alice.token)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE web_sessions SET expires = now() - interval '1 s' WHERE secret_sha256 = %s",
            (sha256(old),),
        )
        conn.execute(
            "UPDATE web_sessions SET last_seen = now() - interval '3 h' WHERE secret_sha256 = %s",
            (sha256(idle),),
        )
    sign_in(server, new_user().token)
    assert session_rows(database_url, old) == []
    assert session_rows(database_url, idle) == []


# --- timeouts: a server of its own with short ones ------------------------------------------

IDLE_S = 3.0
LIFETIME_S = 8.0


@pytest.fixture(scope="module")
def short_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, base = start_server(
        database_url,
        tmp_path_factory.mktemp("web-sessions") / "server.log",
        NMPI_WEB_SESSION_IDLE_MINUTES=str(IDLE_S / 60),
        NMPI_WEB_SESSION_HOURS=str(LIFETIME_S / 3600),
    )
    yield base
    stop_server(process)


def test_idle_sessions_end(
    short_server: str, database_url: str, new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    reply, secret = sign_in(short_server, alice.token)
    assert set_cookie(reply)["max-age"] == str(int(LIFETIME_S))
    with browser(short_server, secret) as web:
        # Used more often than the idle timeout: it lives on past it.
        started = time.monotonic()
        while time.monotonic() - started < IDLE_S * 1.5:
            assert web.get("/auth/me").status_code == 200
            time.sleep(IDLE_S / 4)
        time.sleep(IDLE_S + 0.5)
        ended = web.get("/auth/me")
        assert ended.status_code == 401
        assert session_rows(database_url, secret) == []  # deleted on use


def test_sessions_end_after_their_lifetime_however_used(
    short_server: str, new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    _, secret = sign_in(short_server, alice.token)
    started = time.monotonic()
    with browser(short_server, secret) as web:
        while time.monotonic() - started < LIFETIME_S - 1:
            assert web.get("/auth/me").status_code == 200
            time.sleep(0.5)
        time.sleep(max(0.0, LIFETIME_S - (time.monotonic() - started)) + 0.5)
        assert web.get("/auth/me").status_code == 401


# --- oidc mode: the token is an access token, checked at the provider's userinfo -------------


class _Userinfo(http.server.BaseHTTPRequestHandler):
    tokens: ClassVar[dict[str, dict[str, Any]]] = {
        "access-erin": {"sub": "e-1", "preferred_username": "erin", "roles": {"team": []}},
    }

    def do_GET(self) -> None:
        user = self.tokens.get(self.headers.get("Authorization", "").removeprefix("Bearer "))
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
        NMPI_OIDC_CACHE_SECONDS="0",
    )
    yield base
    stop_server(process)
    idp.shutdown()


def test_oidc_mode_signs_in_with_an_access_token(oidc_server: str, database_url: str) -> None:
    config = httpx.get(f"{oidc_server}/auth/config").json()
    assert config == {"identity_mode": "oidc", "login_url": None}  # no issuer configured
    assert sign_in(oidc_server, "forged")[0].status_code == 401
    reply, secret = sign_in(oidc_server, "access-erin")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"username": "erin", "is_admin": False, "identity_mode": "oidc"}
    [row] = session_rows(database_url, secret)
    assert (row[0], row[1], row[2]) == ("erin", None, "access-erin")
    with browser(oidc_server, secret) as web:
        assert web.get("/auth/me").json()["username"] == "erin"
        # The provider stops accepting the access token: the session ends with it.
        _Userinfo.tokens.pop("access-erin")
        assert web.get("/auth/me").status_code == 401
    assert session_rows(database_url, secret) == []
