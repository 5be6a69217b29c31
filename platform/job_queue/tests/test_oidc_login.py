"""OIDC browser sign-in (authorization code flow with PKCE): GET /auth/login, the provider,
GET /auth/callback, the session cookie.

The provider here is a small one in this process (discovery, authorize, token, userinfo),
strict about PKCE, client authentication, redirect_uri and single-use codes, that can be told
to misbehave. The same flow against a real, certified provider (oidc-provider) in a real
browser is test_oidc_real_provider.py.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest
from conftest import start_server, stop_server
from nmpi_job_queue.oidc_login import OidcLoginError, check_id_token, safe_next
from nmpi_job_queue.web_sessions import COOKIE

CLIENT_ID = "job-manager"
# Made per run (a credential never written in a file), with the characters that
# client_secret_basic must form-encode (RFC 6749, 2.3.1); the token part has none.
SECRET_TOKEN = secrets.token_urlsafe(16)
CLIENT_SECRET = f"{SECRET_TOKEN}:with/odd chars"
REDIRECT_URL = "https://nmpi.example.org/auth/callback"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# --- the provider in this process ------------------------------------------------------------


@dataclass
class Grant:
    challenge: str
    nonce: str
    redirect_uri: str
    used: bool = False


@dataclass
class Behaviour:
    """How the provider answers; tests change it and the fixture restores it."""

    deny: bool = False
    id_nonce: str | None = None  # otherwise the nonce asked for
    id_audience: str | list[str] = CLIENT_ID
    token_calls: list[dict[str, str]] = field(default_factory=list)


class _Provider(http.server.BaseHTTPRequestHandler):
    base: ClassVar[str] = ""
    grants: ClassVar[dict[str, Grant]] = {}
    access: ClassVar[dict[str, dict[str, Any]]] = {}
    behaviour: ClassVar[Behaviour] = Behaviour()

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path, query = urlsplit(self.path).path, query_of(self.path)
        if path == "/.well-known/openid-configuration":
            self._json(
                200,
                {
                    "issuer": self.base,
                    "authorization_endpoint": f"{self.base}/authorize?realm=test",
                    "token_endpoint": f"{self.base}/token",
                    "userinfo_endpoint": f"{self.base}/userinfo",
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                },
            )
        elif path == "/authorize":
            assert query["client_id"] == CLIENT_ID
            assert query["response_type"] == "code"
            assert query["code_challenge_method"] == "S256"
            assert query["realm"] == "test"  # the endpoint's own query is kept
            back = query["redirect_uri"]
            if self.behaviour.deny:
                denied = {"error": "access_denied", "error_description": "The user said no"}
                self._redirect(f"{back}?{urlencode({**denied, 'state': query['state']})}")
                return
            code = secrets.token_urlsafe(16)
            self.grants[code] = Grant(query["code_challenge"], query["nonce"], back)
            self._redirect(f"{back}?{urlencode({'code': code, 'state': query['state']})}")
        elif path == "/userinfo":
            user = self.access.get(self.headers.get("Authorization", "").removeprefix("Bearer "))
            self._json(200 if user else 401, user or {"error": "invalid_token"})
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.behaviour.token_calls.append(form)
        encoded = f"job-manager:{SECRET_TOKEN}%3Awith%2Fodd%20chars"
        expected = base64.b64encode(encoded.encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self._json(401, {"error": "invalid_client", "error_description": "bad credentials"})
            return
        grant = self.grants.get(form.get("code", ""))
        if grant is None or grant.used:
            self._json(400, {"error": "invalid_grant", "error_description": "Code not valid"})
            return
        grant.used = True
        verifier = form.get("code_verifier", "")
        if b64url(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
            self._json(400, {"error": "invalid_grant", "error_description": "PKCE failed"})
            return
        if form.get("redirect_uri") != grant.redirect_uri:
            self._json(400, {"error": "invalid_grant", "error_description": "redirect_uri"})
            return
        access = f"at-{secrets.token_urlsafe(16)}"
        self.access[access] = {
            "sub": "f-1",
            "preferred_username": "frida",
            "roles": {"team": ["collab-oidc-web-editor"]},
        }
        now = int(time.time())
        claims = {
            "iss": self.base,
            "aud": self.behaviour.id_audience,
            "sub": "f-1",
            "nonce": self.behaviour.id_nonce or grant.nonce,
            "iat": now,
            "exp": now + 300,
        }
        self._json(200, {"access_token": access, "id_token": unsigned_jwt(claims)})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    idp = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    _Provider.base = f"http://127.0.0.1:{idp.server_address[1]}"
    threading.Thread(target=idp.serve_forever, daemon=True).start()
    yield _Provider.base
    idp.shutdown()


@pytest.fixture(autouse=True)
def fresh_behaviour() -> None:
    _Provider.behaviour = Behaviour()


@pytest.fixture(scope="module")
def oidc_server(
    database_url: str, provider: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    process, base = start_server(
        database_url,
        tmp_path_factory.mktemp("oidc-login") / "server.log",
        NMPI_IDENTITY_MODE="oidc",
        NMPI_OIDC_USERINFO_URL=f"{provider}/userinfo",
        NMPI_OIDC_ISSUER=provider,
        NMPI_OIDC_CLIENT_ID=CLIENT_ID,
        NMPI_OIDC_CLIENT_SECRET=CLIENT_SECRET,
        NMPI_OIDC_REDIRECT_URL=REDIRECT_URL,
    )
    yield base
    stop_server(process)


def start_login(server: str, next_path: str | None = "/app/jobs?collab=oidc-web") -> str:
    """GET /auth/login: the provider's authorization URL it redirects to."""
    params = {"next": next_path} if next_path is not None else {}
    reply = httpx.get(f"{server}/auth/login", params=params)
    assert reply.status_code == 302, reply.text
    return reply.headers["location"]


def at_provider(authorization_url: str) -> dict[str, str]:
    """The provider's answer, as the browser carries it back to the callback: its query."""
    reply = httpx.get(authorization_url)
    assert reply.status_code == 302, reply.text
    location = reply.headers["location"]
    assert location.startswith(REDIRECT_URL + "?")
    return query_of(location)


def test_config_names_the_login_url(oidc_server: str) -> None:
    reply = httpx.get(f"{oidc_server}/auth/config")
    assert reply.json() == {"identity_mode": "oidc", "login_url": "/auth/login"}


def test_sign_in_end_to_end(oidc_server: str, database_url: str) -> None:
    authorization = start_login(oidc_server)
    asked = query_of(authorization)
    assert asked["response_type"] == "code"
    assert asked["client_id"] == CLIENT_ID
    assert asked["redirect_uri"] == REDIRECT_URL
    assert asked["scope"] == "openid profile email"
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43
    # Kept server-side: the state's digest (not the state), the nonce, the verifier, next.
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT nonce, code_verifier, next_path, expires - now() FROM web_logins "
            "WHERE state_sha256 = %s",
            (sha256(asked["state"]),),
        ).fetchone()
    assert row is not None
    nonce, verifier, next_path, remaining = row
    assert nonce == asked["nonce"]
    assert b64url(hashlib.sha256(verifier.encode()).digest()) == asked["code_challenge"]
    assert next_path == "/app/jobs?collab=oidc-web"
    assert 540 < remaining.total_seconds() <= 600

    back = at_provider(authorization)
    reply = httpx.get(f"{oidc_server}/auth/callback", params=back)
    assert reply.status_code == 302, reply.text
    assert reply.headers["location"] == "/app/jobs?collab=oidc-web"
    cookie = reply.headers["set-cookie"]
    assert re.fullmatch(
        rf"{COOKIE}=[\w-]{{43}}; Max-Age=43200; Path=/; Secure; HttpOnly; SameSite=Strict", cookie
    )
    secret = cookie.split(";")[0].split("=", 1)[1]
    [token_call] = _Provider.behaviour.token_calls
    assert token_call["grant_type"] == "authorization_code"
    assert token_call["code_verifier"] == verifier
    web = httpx.Client(base_url=oidc_server, headers={"Cookie": f"{COOKIE}={secret}"})
    me = web.get("/auth/me")
    assert me.json() == {"username": "frida", "is_admin": False, "identity_mode": "oidc"}
    # The session's identity is the access token, held server-side and resolved at userinfo.
    with psycopg.connect(database_url, autocommit=True) as conn:
        held = conn.execute(
            "SELECT username, access_token FROM web_sessions WHERE secret_sha256 = %s",
            (sha256(secret),),
        ).fetchone()
    assert held is not None
    assert held[0] == "frida"
    assert held[1] in _Provider.access
    created = web.post(
        "/jobs/",
        json={"code": "x", "collab": "oidc-web", "hardware_platform": "Demo"},
        headers={"X-NMPI-CSRF": "1"},
    )
    assert created.status_code == 201, created.text
    # The state is single use: the same callback again is refused.
    again = httpx.get(f"{oidc_server}/auth/callback", params=back)
    assert again.status_code == 400
    assert "unknown, used or expired" in again.json()["detail"]


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        ("/app/", "/app/"),
        ("/app/jobs/42?tab=log", "/app/jobs/42?tab=log"),
        (None, "/app/"),
        ("https://evil.example/app/", "/app/"),
        ("//evil.example/app/", "/app/"),
        ("/app//evil.example", "/app/"),
        ("/app/../auth/session", "/app/"),
        ("/app/%2e%2e/jobs/", "/app/"),
        ("/app/\\evil.example", "/app/"),
        ("/jobs/", "/app/"),
        ("/application", "/app/"),
        ("/app/x\r\nSet-Cookie: a=b", "/app/"),
    ],
)
def test_next_stays_in_the_app(asked: str | None, kept: str) -> None:
    assert safe_next(asked) == kept


def test_next_elsewhere_lands_in_the_app(oidc_server: str) -> None:
    back = at_provider(start_login(oidc_server, "https://evil.example/"))
    reply = httpx.get(f"{oidc_server}/auth/callback", params=back)
    assert reply.status_code == 302
    assert reply.headers["location"] == "/app/"


def test_the_providers_refusal_is_shown(oidc_server: str) -> None:
    _Provider.behaviour.deny = True
    back = at_provider(start_login(oidc_server))
    reply = httpx.get(f"{oidc_server}/auth/callback", params=back)
    assert reply.status_code == 400
    assert reply.json()["detail"] == (
        "the OIDC provider refused the sign-in: access_denied: The user said no"
    )
    assert "set-cookie" not in reply.headers
    page = httpx.get(
        f"{oidc_server}/auth/callback",
        params={"error": "access_denied", "error_description": "<b>no</b>"},
        headers={"Accept": "text/html"},
    )
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert "access_denied: &lt;b&gt;no&lt;/b&gt;" in page.text


def test_a_wrong_verifier_is_refused_by_the_provider(oidc_server: str, database_url: str) -> None:
    authorization = start_login(oidc_server)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE web_logins SET code_verifier = %s WHERE state_sha256 = %s",
            ("x" * 43, sha256(query_of(authorization)["state"])),
        )
    reply = httpx.get(f"{oidc_server}/auth/callback", params=at_provider(authorization))
    assert reply.status_code == 400
    assert reply.json()["detail"] == (
        "the OIDC provider refused the authorization code (400): invalid_grant: PKCE failed"
    )


def test_an_id_token_for_another_sign_in_is_refused(oidc_server: str) -> None:
    _Provider.behaviour.id_nonce = "someone-elses"
    reply = httpx.get(f"{oidc_server}/auth/callback", params=at_provider(start_login(oidc_server)))
    assert reply.status_code == 400
    assert "nonce does not match" in reply.json()["detail"]


def test_an_expired_sign_in_is_refused(oidc_server: str, database_url: str) -> None:
    authorization = start_login(oidc_server)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE web_logins SET expires = now() - interval '1 s' WHERE state_sha256 = %s",
            (sha256(query_of(authorization)["state"]),),
        )
    reply = httpx.get(f"{oidc_server}/auth/callback", params=at_provider(authorization))
    assert reply.status_code == 400
    assert "expired" in reply.json()["detail"]
    missing = httpx.get(f"{oidc_server}/auth/callback", params={"code": "x"})
    assert missing.status_code == 400
    assert "code and state" in missing.json()["detail"]


def test_login_is_404_without_an_issuer(server: str) -> None:
    reply = httpx.get(f"{server}/auth/login")
    assert reply.status_code == 404
    assert "POST /auth/session" in reply.json()["detail"]


def test_id_token_checks() -> None:
    now = time.time()
    good = {"iss": "https://idp", "aud": "c", "nonce": "n", "exp": now + 60, "iat": now}

    def check(**changes: Any) -> None:
        token = unsigned_jwt({**good, **changes})
        check_id_token(token, issuer="https://idp/", client_id="c", nonce="n")

    check()
    check(aud=["c", "other"], azp="c")
    refused: list[tuple[dict[str, Any], str]] = [
        ({"iss": "https://evil"}, "issuer"),
        ({"aud": "other"}, "audience"),
        ({"aud": ["c", "other"]}, "authorized party"),
        ({"nonce": "m"}, "nonce"),
        ({"exp": now - 120}, "expired"),
        ({"exp": None}, "expired"),
        ({"iat": now + 600}, "future"),
    ]
    for changes, reason in refused:
        with pytest.raises(OidcLoginError, match=reason):
            check(**changes)
    with pytest.raises(OidcLoginError, match="not a JWT"):
        check_id_token("garbage", issuer="https://idp", client_id="c", nonce="n")
