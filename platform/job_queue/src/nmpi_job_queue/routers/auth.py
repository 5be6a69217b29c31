"""Browser sign-in for the web app: a session cookie instead of a token (docs/web-sessions.md)."""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy import delete

from .. import limits, models, oidc_login, web_sessions
from ..dependencies import (
    AppSettings,
    CurrentUser,
    DbSession,
    WebSessionCookie,
    require_csrf_header,
)
from ..identity import IdentityResolver, User, digest, resolve_provider
from ..oidc_login import OidcLogin, OidcLoginError
from ..openapi import error_response
from ..schemas.auth import AuthConfig, SignIn, WebUser
from ..settings import IdentityMode, Settings

router = APIRouter(prefix="/auth", tags=["web sign-in"])
log = logging.getLogger("nmpi_job_queue.auth")

LOGIN_PATH = "/auth/login"
SET_COOKIE = {
    "Set-Cookie": {
        "description": f"{web_sessions.COOKIE}=<secret>; Max-Age=<absolute lifetime>; Path=/; "
        "Secure; HttpOnly; SameSite=Strict",
        "schema": {"type": "string"},
    }
}


def web_user(user: User, settings: Settings) -> WebUser:
    return WebUser(
        username=user.username, is_admin=user.is_admin, identity_mode=settings.identity_mode
    )


def set_session_cookie(response: Response, secret: str, settings: Settings) -> None:
    response.headers.append(
        "Set-Cookie",
        web_sessions.cookie_header(secret, web_sessions.lifetime_seconds(settings)),
    )


@router.get("/config")
async def auth_config(settings: AppSettings) -> AuthConfig:
    """How the web app signs in: at the OIDC provider (`login_url`), or with a token."""
    return AuthConfig(
        identity_mode=settings.identity_mode,
        login_url=LOGIN_PATH if settings.oidc_login_enabled else None,
    )


@router.post(
    "/session",
    responses={
        200: {"headers": SET_COOKIE},
        401: error_response("The token is not a valid, unexpired user token"),
        403: error_response(f"No '{web_sessions.CSRF_HEADER}: 1' header"),
    },
)
async def sign_in(
    body: SignIn,
    request: Request,
    response: Response,
    session: DbSession,
    settings: AppSettings,
    web_session: WebSessionCookie = None,
) -> WebUser:
    """Exchange a user's token for a session cookie (HttpOnly: the web app's scripts never see
    it). The token is checked as a Bearer token is; provider API keys are refused. Needs the
    header `X-NMPI-CSRF: 1`, so that no other site can sign a browser in."""
    require_csrf_header(request)
    token = body.token.strip()
    resolver: IdentityResolver = request.app.state.identity
    user = await resolver.resolve(token, session)
    if user is None:
        if await resolve_provider(token, session) is not None:
            detail = "this is a hardware provider's API key: only users sign in to the web app"
        elif settings.identity_mode is IdentityMode.oidc:
            detail = "the OIDC provider does not accept this access token (invalid or expired)"
        else:
            detail = "invalid or expired token"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail)
    if web_session:  # signing in again replaces the browser's session
        await web_sessions.end(session, web_session)
    local = settings.identity_mode is IdentityMode.local
    secret = await web_sessions.create(
        session,
        settings,
        user.username,
        token=token if local else None,
        access_token=None if local else token,
    )
    await session.commit()
    set_session_cookie(response, secret, settings)
    log.info("web session started", extra={"user": user.username})
    return web_user(user, settings)


@router.get("/me", responses={401: error_response("Not signed in (or the session has ended)")})
async def me(user: CurrentUser, settings: AppSettings) -> WebUser:
    """Who is signed in (also answers for a Bearer token)."""
    return web_user(user, settings)


@router.delete(
    "/session",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        204: {"headers": SET_COOKIE},
        403: error_response(f"A session cookie without the '{web_sessions.CSRF_HEADER}' header"),
    },
)
async def sign_out(
    request: Request, session: DbSession, web_session: WebSessionCookie = None
) -> Response:
    """End the browser's session and clear its cookie; 204 also when there was none."""
    if web_session:
        require_csrf_header(request)  # no other site may sign a browser out
        await web_sessions.end(session, web_session)
        await session.commit()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.headers.append("Set-Cookie", web_sessions.clear_cookie_header())
    return response


# --- OIDC sign-in (authorization code flow with PKCE) --------------------------------------


def _oidc_login(request: Request) -> OidcLogin:
    login: OidcLogin | None = request.app.state.oidc_login
    if login is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail="sign-in at an OIDC provider is not configured here (NMPI_OIDC_ISSUER): "
            "sign in with a token (POST /auth/session)",
        )
    return login


def _login_failed(request: Request, error: OidcLoginError) -> Response:
    """JSON for programs; a short page for a browser, which got here by a redirect."""
    detail = str(error)
    log.warning("web sign-in failed", extra={"reason": detail[:500]})
    if "text/html" in request.headers.get("accept", ""):
        page = (
            "<!doctype html><meta charset=utf-8><title>Sign-in failed</title>"
            f"<h1>Sign-in failed</h1><p>{html.escape(detail)}</p>"
            f'<p><a href="{oidc_login.DEFAULT_NEXT}">Back to the Job Manager</a></p>'
        )
        return HTMLResponse(page, status_code=error.status)
    return JSONResponse({"detail": detail}, status_code=error.status)


@router.get(
    "/login",
    status_code=status.HTTP_302_FOUND,
    responses={
        302: {"description": "To the provider's authorization endpoint"},
        404: error_response("Not in oidc mode, or no NMPI_OIDC_ISSUER"),
        502: error_response("The provider's discovery document cannot be read"),
    },
)
async def login(
    request: Request,
    session: DbSession,
    next_: Annotated[
        str | None,
        Query(
            alias="next",
            max_length=limits.NEXT_PATH_MAX_CHARS,
            description="where to go once signed in: a path under /app/ (anything else: /app/)",
        ),
    ] = None,
) -> Response:
    """Start signing in at the OIDC provider: remember this sign-in (state, nonce, PKCE
    verifier; 10 minutes), send the browser to the provider."""
    provider = _oidc_login(request)
    attempt = oidc_login.Login.new()
    try:
        target = await provider.authorization_url(attempt)
    except OidcLoginError as error:
        return _login_failed(request, error)
    await web_sessions.delete_expired_logins(session)
    session.add(
        models.WebLogin(
            state_sha256=digest(attempt.state),
            nonce=attempt.nonce,
            code_verifier=attempt.code_verifier,
            next_path=oidc_login.safe_next(next_),
            expires=datetime.now(UTC) + timedelta(minutes=oidc_login.LOGIN_MINUTES),
        )
    )
    await session.commit()
    return RedirectResponse(target, status_code=status.HTTP_302_FOUND)


@router.get(
    "/callback",
    status_code=status.HTTP_302_FOUND,
    responses={
        302: {"description": "Signed in: to the `next` path, with the session cookie"},
        400: error_response("The provider refused, or the sign-in is unknown or expired"),
        404: error_response("Not in oidc mode, or no NMPI_OIDC_ISSUER"),
        502: error_response("The provider cannot be reached or answered wrongly"),
    },
)
async def callback(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    code: Annotated[str | None, Query(max_length=limits.SIGN_IN_TOKEN_MAX_CHARS)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Where the provider sends the browser back: the code exchanged for tokens, a session
    made, the browser sent on to where it was going."""
    provider = _oidc_login(request)
    # Single use: the sign-in is taken (deleted) before anything else, whatever follows.
    pending = None
    if state:
        pending = (
            await session.execute(
                delete(models.WebLogin)
                .where(models.WebLogin.state_sha256 == digest(state))
                .returning(
                    models.WebLogin.nonce,
                    models.WebLogin.code_verifier,
                    models.WebLogin.next_path,
                    models.WebLogin.expires,
                )
            )
        ).first()
        await session.commit()
    try:
        if error:
            raise oidc_login.provider_error(error, error_description)
        if not code or not state:
            raise OidcLoginError("the callback needs code and state (start at /auth/login)")
        if pending is None or pending.expires <= datetime.now(UTC):
            raise OidcLoginError(
                "unknown, used or expired sign-in (state): start again at /auth/login"
            )
        tokens = await provider.exchange(code, pending.code_verifier, pending.nonce)
        resolver: IdentityResolver = request.app.state.identity
        user = await resolver.resolve(tokens.access_token, session)
        if user is None:
            raise OidcLoginError("the OIDC provider's userinfo refused the new access token")
        subject = tokens.id_claims.get("sub")
        if subject and user.info.get("sub") and user.info["sub"] != subject:
            raise OidcLoginError("the ID token and userinfo name different users (sub)")
    except OidcLoginError as failure:
        return _login_failed(request, failure)
    secret = await web_sessions.create(
        session, settings, user.username, access_token=tokens.access_token
    )
    await session.commit()
    response = RedirectResponse(pending.next_path, status_code=status.HTTP_302_FOUND)
    set_session_cookie(response, secret, settings)
    log.info("web session started", extra={"user": user.username, "via": "oidc"})
    return response
