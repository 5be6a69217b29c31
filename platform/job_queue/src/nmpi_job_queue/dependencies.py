"""FastAPI dependencies: database session, caller identity, permission guards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Cookie, Depends, Header, HTTPException, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from . import models, web_sessions
from .domain import claims
from .identity import IdentityResolver, Provider, User, public_collabs, resolve_provider
from .maintenance import WRITE_METHODS
from .settings import Settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbSession = Annotated[AsyncSession, Depends(get_session)]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]

_UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    detail="authentication required: send 'Authorization: Bearer <token>' (users) "
    "or 'x-api-key: <key>' (hardware providers)",
    headers={"WWW-Authenticate": "Bearer"},
)


WebSessionCookie = Annotated[
    str | None,
    Cookie(
        alias=web_sessions.COOKIE,
        description="the web app's session (POST /auth/session), used when neither "
        f"Authorization nor x-api-key is sent; writes then need '{web_sessions.CSRF_HEADER}: 1'",
    ),
]


async def get_caller(
    request: Request,
    session: DbSession,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
    web_session: WebSessionCookie = None,
) -> User | Provider:
    if x_api_key:
        provider = await resolve_provider(x_api_key, session)
        if provider is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="invalid API key")
        request.state.caller = f"provider:{provider.name}"
        return provider
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _UNAUTHORIZED
        resolver: IdentityResolver = request.app.state.identity
        user = await resolver.resolve(token.strip(), session)
        if user is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="invalid or expired token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        request.state.caller = f"user:{user.username}"
        return user
    if web_session:
        return await _web_session_user(request, session, web_session)
    raise _UNAUTHORIZED


def require_csrf_header(request: Request) -> None:
    """403 for a write that a browser could have been made to send by another site: one
    without the custom header, which only same-origin scripts can add."""
    if (
        request.method in WRITE_METHODS
        and request.headers.get(web_sessions.CSRF_HEADER) != web_sessions.CSRF_VALUE
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"the header '{web_sessions.CSRF_HEADER}: {web_sessions.CSRF_VALUE}' is "
            f"required on {request.method} requests signed in by the session cookie "
            "(cross-site request forgery protection)",
        )


async def _web_session_user(request: Request, session: AsyncSession, secret: str) -> User:
    settings: Settings = request.app.state.settings
    resolver: IdentityResolver = request.app.state.identity
    user = await web_sessions.authenticate(session, settings, resolver, secret)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="the web session has ended (signed out, timed out or its token revoked): "
            "sign in again",
            headers={"Set-Cookie": web_sessions.clear_cookie_header()},
        )
    require_csrf_header(request)
    request.state.caller = f"user:{user.username}"
    return user


Caller = Annotated[User | Provider, Depends(get_caller)]


async def get_user(caller: Caller) -> User:
    if not isinstance(caller, User):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="this call is for users, not providers"
        )
    return caller


async def get_provider(caller: Caller) -> Provider:
    if not isinstance(caller, Provider):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="this call needs a provider API key (x-api-key)"
        )
    return caller


CurrentUser = Annotated[User, Depends(get_user)]
CurrentProvider = Annotated[Provider, Depends(get_provider)]


def require_admin(user: User, as_admin: bool) -> None:
    """Admin actions must be asked for explicitly (as_admin=true) and allowed."""
    if not as_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="admin action: add as_admin=true")
    if not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="only platform administrators may do this"
        )


async def require_viewable(
    session: AsyncSession, user: User, collabs: list[str], what: str
) -> None:
    """403 naming every collab in `collabs` the user may not view (`what`: "jobs", "sessions"):
    those where the user has no role, unless public."""
    refused = [c for c in collabs if not user.can_view(c)]
    if refused:
        public = await public_collabs(session, refused)
        refused = [c for c in refused if c not in public]
    if refused:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"you may not view the {what} of collab(s): {', '.join(refused)}",
        )


AsAdmin = Annotated[bool, Query(description="act as a platform administrator")]


# The claim id GET /jobs/next gave (X-NMPI-Claim), on every provider write to a job.
ClaimHeader = Annotated[
    uuid.UUID | None,
    Header(
        alias=claims.CLAIM_HEADER,
        description="the claim id GET /jobs/next gave; when sent, it must be the job's current "
        "claim (otherwise the provider must be the one holding the claim)",
    ),
]


def require_holder(job: models.Job, provider: str, claim: uuid.UUID | None) -> None:
    """409 unless this provider write comes from the job's current claim (fencing)."""
    try:
        claims.check_holder(job, provider, claim)
    except claims.ClaimConflictError as conflict:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(conflict)) from None
