"""Browser sign-in end to end against a real OpenID provider, in a real browser.

The provider is panva's oidc-provider (OpenID Certified), pinned in tests/oidc_provider/
(package.json and its lock file) and started by node from tests/oidc_provider/provider.mjs:
one confidential client (client_secret_basic, PKCE required), the library's own login and
consent pages (any login name and password; the login becomes the account), opaque access
tokens that its userinfo endpoint accepts. The job queue runs in oidc mode on a real
PostgreSQL with that provider as NMPI_OIDC_ISSUER, its userinfo endpoint as
NMPI_OIDC_USERINFO_URL. Chromium (Debian's, driven by Playwright) does what a user does:

  /auth/login?next=/app/... -> the provider's login page -> consent -> /auth/callback
  -> 302 to /app/... with the session cookie

and the tests show that
- the browser keeps `__Host-nmpi_session` (HttpOnly, Secure, SameSite=Strict, host-only, /),
  and with it /auth/me names the provider's user and a write (with the CSRF header) works;
- the session holds the provider's opaque access token, which the provider's userinfo accepts;
- the state is single use: the same callback again is refused (400);
- a callback with a state the job queue never issued is refused, and so is the genuine one
  when the PKCE code_verifier is not the one the challenge was made from (the provider says
  invalid_grant);
- a code used twice is refused by the provider, which then revokes what it issued for it: the
  session made from it ends;
- sign-out ends the session: the cookie is cleared and the old secret opens nothing.

The cookie is Secure and the servers are plain http on 127.0.0.1: Chromium treats loopback
origins as secure contexts and stores and sends Secure (and __Host-) cookies for them, so no
TLS is needed here (deployments are https behind nginx).

Needs node (20.19 or newer) and /usr/bin/chromium; `npm ci` runs in tests/oidc_provider when
its node_modules does not hold the committed lock file (the npm registry must be reachable
then). The module is skipped, saying why, only when node or Chromium is missing.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest
from conftest import start_server, stop_server
from nmpi_job_queue.web_sessions import COOKIE, CSRF_HEADER
from nmpi_lab import processes
from pg_harness import free_port
from playwright.sync_api import Browser, Cookie, Page, Response, Route, sync_playwright

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
LOCK = PROVIDER_DIR / "package-lock.json"
INSTALLED_LOCK = PROVIDER_DIR / "node_modules" / ".package-lock.json.installed"
CHROMIUM = "/usr/bin/chromium"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None or not os.access(CHROMIUM, os.X_OK),
    reason="the real-provider sign-in needs node and npm (apt-get install nodejs npm) and "
    f"Chromium at {CHROMIUM} (apt-get install chromium)",
)

CLIENT_ID = "job-manager"
# Made per run; form-encoded before Basic (RFC 6749 2.3.1), hence the odd characters.
CLIENT_SECRET = f"{secrets.token_urlsafe(12)}:with/odd chars"
USERNAME = "frida"
NEXT = "/app/jobs?collab=oidc-real-frida"
CSRF = {CSRF_HEADER: "1"}
# Chromium waits at most this long (ms) for any one step.
STEP_MS = 15_000


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def npm_ci() -> None:
    """Install the pinned provider from the lock file, unless node_modules already holds it
    (as scripts/build-job-manager does: npm ci wipes node_modules, so only when needed)."""
    if INSTALLED_LOCK.exists() and filecmp.cmp(LOCK, INSTALLED_LOCK, shallow=False):
        return
    assert NPM
    result = subprocess.run(
        [NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PROVIDER_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci in {PROVIDER_DIR} failed: {result.stderr.strip()[-2000:]}")
    shutil.copyfile(LOCK, INSTALLED_LOCK)


@dataclass(frozen=True)
class Servers:
    issuer: str  # the provider
    userinfo: str  # its userinfo endpoint
    queue: str  # the job queue


@pytest.fixture(scope="module")
def servers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    npm_ci()
    logs = tmp_path_factory.mktemp("oidc-real-provider")
    provider_port = free_port()
    queue_port = free_port()
    while queue_port == provider_port:
        queue_port = free_port()
    issuer = f"http://127.0.0.1:{provider_port}"
    queue = f"http://127.0.0.1:{queue_port}"
    assert NODE
    provider_log = logs / "provider.log"
    provider = processes.start(
        [NODE, "provider.mjs", str(provider_port)],
        provider_log,
        env={
            **os.environ,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_REDIRECT_URI": f"{queue}/auth/callback",
        },
        cwd=PROVIDER_DIR,
    )
    try:
        processes.wait_until(
            lambda: processes.http_ok(f"{issuer}/.well-known/openid-configuration"),
            30,
            "oidc-provider",
            interval=0.1,
            process=provider,
            log=provider_log,
        )
        discovery = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
        assert discovery["issuer"] == issuer
        userinfo = discovery["userinfo_endpoint"]
        process, base = start_server(
            database_url,
            logs / "server.log",
            port=queue_port,
            NMPI_IDENTITY_MODE="oidc",
            NMPI_OIDC_USERINFO_URL=userinfo,
            NMPI_OIDC_ISSUER=issuer,
            NMPI_OIDC_CLIENT_ID=CLIENT_ID,
            NMPI_OIDC_CLIENT_SECRET=CLIENT_SECRET,
            NMPI_OIDC_REDIRECT_URL=f"{queue}/auth/callback",
            NMPI_OIDC_SCOPES="openid profile email team",
            # Every request asks the provider: a revoked access token ends the session at once.
            NMPI_OIDC_CACHE_SECONDS="0",
        )
        assert base == queue
        try:
            yield Servers(issuer, userinfo, queue)
        finally:
            stop_server(process)
    finally:
        processes.stop(provider)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own: no cookies of the provider or the job queue yet."""
    context = browser.new_context()
    context.set_default_timeout(STEP_MS)
    # Nothing but these servers (the provider's page imports a web font from the internet).
    context.route(lambda url: not url.startswith("http://127.0.0.1:"), abort)
    try:
        yield context.new_page()
    finally:
        context.close()


def abort(route: Route) -> None:
    route.abort()


def is_callback(servers: Servers) -> re.Pattern[str]:
    """The job queue's /auth/callback, with its query (for Playwright's URL matchers)."""
    return re.compile(rf"^{re.escape(servers.queue)}/auth/callback\?")


def start_sign_in(page: Page, servers: Servers) -> str:
    """The browser at /auth/login, sent on to the provider's login page; returns the
    authorization URL the job queue sent it to (with its state)."""
    authorization = re.compile(rf"^{re.escape(servers.issuer)}/auth\?")
    with page.expect_request(authorization) as asked:
        page.goto(f"{servers.queue}/auth/login?{urlencode({'next': NEXT})}")
    assert page.url.startswith(f"{servers.issuer}/interaction/"), page.url
    return asked.value.url


def log_in_and_consent(page: Page, servers: Servers) -> None:
    """The provider's own login and consent pages, as a user fills them in; returns once
    Continue is clicked (the browser is then on its way back to /auth/callback)."""
    assert page.get_by_role("heading").inner_text() == "Sign-in"
    page.get_by_placeholder("Enter any login").fill(USERNAME)
    page.get_by_placeholder("and password").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    # The consent page (another interaction): what the client asks for, and Continue.
    page.get_by_role("button", name="Continue").wait_for()
    assert page.get_by_role("heading").inner_text() == "Authorize"
    assert page.url.startswith(f"{servers.issuer}/interaction/"), page.url
    page.get_by_role("button", name="Continue").click()


def sign_in(page: Page, servers: Servers) -> Response:
    """A whole sign-in in the browser; returns the job queue's answer at /auth/callback."""
    with page.expect_response(is_callback(servers)) as answered:
        start_sign_in(page, servers)
        log_in_and_consent(page, servers)
    return answered.value


def session_cookie(page: Page, servers: Servers) -> Cookie | None:
    found = [c for c in page.context.cookies(servers.queue) if c["name"] == COOKIE]
    return found[0] if found else None


def visit(page: Page, url: str) -> Response:
    """A navigation the user makes (typed, or a bookmark): the page's answer."""
    reply = page.goto(url)
    assert reply is not None
    return reply


def fetch(page: Page, path: str, method: str = "GET", **options: Any) -> tuple[int, Any]:
    """A request of the page's own scripts (same origin: the browser adds the cookie)."""
    result: tuple[int, Any] = tuple(
        page.evaluate(
            """async ([path, init]) => {
                const reply = await fetch(path, init);
                const text = await reply.text();
                let body = text;
                try { body = JSON.parse(text); } catch (e) {}
                return [reply.status, body];
            }""",
            [path, {"method": method, **options}],
        )
    )
    return result


def test_browser_sign_in_end_to_end(page: Page, servers: Servers, database_url: str) -> None:
    callback = sign_in(page, servers)
    back = query_of(callback.url)
    assert set(back) >= {"code", "state"}
    assert back.get("iss") == servers.issuer  # RFC 9207, as the real provider sends it
    assert callback.status == 302, callback.text()
    assert callback.header_value("location") == NEXT
    set_cookie = callback.header_value("set-cookie")
    assert re.fullmatch(
        rf"{COOKIE}=[\w-]{{43}}; Max-Age=43200; Path=/; Secure; HttpOnly; SameSite=Strict",
        set_cookie or "",
    ), set_cookie
    # The browser followed the redirect into the web app (not served by the job queue: 404).
    page.wait_for_url(f"{servers.queue}{NEXT}")
    cookie = session_cookie(page, servers)
    assert cookie is not None, page.context.cookies()
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert cookie["domain"] == "127.0.0.1"  # host-only: no Domain attribute
    secret = cookie["value"]
    assert page.evaluate("document.cookie").find(COOKIE) == -1  # HttpOnly: no script sees it

    # The cookie is the browser's identity: the provider's user, with its team role.
    assert fetch(page, "/auth/me") == (
        200,
        {"username": USERNAME, "is_admin": False, "identity_mode": "oidc"},
    )
    status, job = fetch(
        page,
        "/jobs/",
        "POST",
        headers={**CSRF, "Content-Type": "application/json"},
        body='{"code": "print(1)", "collab": "oidc-real-frida", "hardware_platform": "Demo"}',
    )
    assert status == 201, job
    assert job["user_id"] == USERNAME

    # The session holds the provider's opaque access token; its userinfo says who it is.
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT username, access_token FROM web_sessions WHERE secret_sha256 = %s",
            (sha256(secret),),
        ).fetchone()
    assert row is not None
    username, access_token = row
    assert username == USERNAME
    assert "." not in access_token  # opaque, not a JWT
    info = httpx.get(servers.userinfo, headers={"Authorization": f"Bearer {access_token}"})
    assert info.status_code == 200, info.text
    assert info.json() == {
        "sub": USERNAME,
        "preferred_username": USERNAME,
        "name": f"Test User {USERNAME}",
        "email": f"{USERNAME}@example.org",
        "roles": {"team": ["collab-oidc-real-frida-editor"], "group": []},
    }

    # The state is single use: the same callback again is refused, and makes no session.
    again = visit(page, callback.url)
    assert again.status == 400
    assert "unknown, used or expired sign-in" in page.content()
    assert session_cookie(page, servers) == cookie  # the first session is untouched

    # Sign-out: a cookie-authenticated write, so the CSRF header is needed.
    assert fetch(page, "/auth/session", "DELETE")[0] == 403
    assert fetch(page, "/auth/me")[0] == 200
    assert fetch(page, "/auth/session", "DELETE", headers=CSRF)[0] == 204
    assert session_cookie(page, servers) is None  # cleared in the browser
    assert fetch(page, "/auth/me")[0] == 401
    # and ended on the server: the old secret opens nothing.
    old = httpx.get(f"{servers.queue}/auth/me", headers={"Cookie": f"{COOKIE}={secret}"})
    assert old.status_code == 401
    with psycopg.connect(database_url, autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM web_sessions WHERE secret_sha256 = %s", (sha256(secret),)
        ).fetchone()
    assert left == (0,)


def test_a_state_the_job_queue_never_issued_is_refused(page: Page, servers: Servers) -> None:
    """Login CSRF: a sign-in started elsewhere (its own state) and finished in this browser.
    The provider gives a good code; the job queue knows no such state and makes no session."""
    authorization = start_sign_in(page, servers)
    forged = {**query_of(authorization), "state": secrets.token_urlsafe(32)}
    page.goto(f"{servers.issuer}/auth?{urlencode(forged)}")
    with page.expect_response(is_callback(servers)) as answered:
        log_in_and_consent(page, servers)
    reply = answered.value
    assert query_of(reply.url)["state"] == forged["state"]
    assert "code" in query_of(reply.url)
    assert reply.status == 400
    assert reply.header_value("set-cookie") is None
    page.wait_for_load_state()
    assert "unknown, used or expired sign-in (state)" in page.content()
    assert session_cookie(page, servers) is None


def test_a_wrong_code_verifier_is_refused_by_the_provider(
    page: Page, servers: Servers, database_url: str
) -> None:
    """The genuine state, but the verifier kept for it is not the one the code challenge was
    made from: the provider checks PKCE and refuses the code."""
    state = query_of(start_sign_in(page, servers))["state"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        changed = conn.execute(
            "UPDATE web_logins SET code_verifier = %s WHERE state_sha256 = %s",
            ("x" * 43, sha256(state)),
        ).rowcount
    assert changed == 1
    with page.expect_response(is_callback(servers)) as answered:
        log_in_and_consent(page, servers)
    reply = answered.value
    assert reply.status == 400
    assert reply.header_value("set-cookie") is None
    page.wait_for_load_state()
    text = page.content()
    assert "the OIDC provider refused the authorization code (400): invalid_grant" in text, text
    assert session_cookie(page, servers) is None
    # The state was spent by that attempt.
    assert visit(page, reply.url).status == 400


def test_a_code_used_twice_is_refused_and_its_session_ends(
    page: Page, servers: Servers, database_url: str
) -> None:
    """A code is good once at the provider. Presented again (with its verifier, as by someone
    who copied both), it is refused, and the provider revokes the tokens issued for it
    (RFC 6749 4.1.2): the job queue's session made from them ends with them."""
    state = query_of(start_sign_in(page, servers))["state"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT code_verifier FROM web_logins WHERE state_sha256 = %s", (sha256(state),)
        ).fetchone()
    assert row is not None
    with page.expect_response(is_callback(servers)) as answered:
        log_in_and_consent(page, servers)
    callback = answered.value
    assert callback.status == 302
    page.wait_for_url(f"{servers.queue}{NEXT}")
    assert fetch(page, "/auth/me")[0] == 200

    fresh = httpx.get(f"{servers.queue}/auth/login")
    assert fresh.status_code == 302
    second = query_of(fresh.headers["location"])["state"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE web_logins SET code_verifier = %s WHERE state_sha256 = %s",
            (row[0], sha256(second)),
        )
    code = query_of(callback.url)["code"]
    reused = httpx.get(f"{servers.queue}/auth/callback", params={"code": code, "state": second})
    assert reused.status_code == 400
    assert "refused the authorization code (400): invalid_grant" in reused.json()["detail"]
    assert "set-cookie" not in reused.headers
    # The session's access token is no longer accepted at userinfo: the session is over.
    assert fetch(page, "/auth/me")[0] == 401
