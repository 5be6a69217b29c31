"""Browser sessions: an HttpOnly cookie naming a session kept in the database.

The web app (the Job Manager, same origin) never holds a token: the browser holds a random
secret in a cookie that scripts cannot read, the database its SHA-256 and what the session was
made from (a local token's digest, or an OIDC access token). See docs/web-sessions.md.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from . import models
from .identity import IdentityResolver, LocalIdentity, OidcIdentity, User, digest, new_secret
from .settings import Settings

# __Host-: the browser accepts it only from a secure origin, for Path=/ and without Domain, so
# no other host (a sibling subdomain) can set or shadow it.
COOKIE = "__Host-nmpi_session"
# Scripts of other sites cannot send a custom header without a CORS preflight, which this
# service never grants: a cookie-authenticated write must carry it.
CSRF_HEADER = "X-NMPI-CSRF"
CSRF_VALUE = "1"
# last_seen is written at most this often (seconds), not on every request.
TOUCH_INTERVAL_S = 60.0
# Expired sessions and sign-ins deleted per new one: old rows go without a long statement.
CLEANUP_BATCH = 1000

W = models.WebSession


def cookie_header(secret: str, max_age: int) -> str:
    """The Set-Cookie value; max_age 0 (and an empty secret) clears it."""
    return f"{COOKIE}={secret}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Strict"


def clear_cookie_header() -> str:
    return cookie_header("", 0)


def lifetime_seconds(settings: Settings) -> int:
    """The cookie's Max-Age: the session's absolute lifetime."""
    return max(1, math.ceil(settings.web_session_hours * 3600))


def _idle(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.web_session_idle_minutes)


def _touch_interval(settings: Settings) -> timedelta:
    # Once a minute; more often only if the idle timeout is so short (tests) that a minute's
    # lag would matter.
    return min(timedelta(seconds=TOUCH_INTERVAL_S), _idle(settings) / 4)


async def delete_expired(session: AsyncSession, settings: Settings) -> None:
    """Delete up to CLEANUP_BATCH sessions past either timeout, and expired sign-ins."""
    now = datetime.now(UTC)
    stale = (
        select(W.id)
        .where(or_(W.expires <= now, W.last_seen <= now - _idle(settings)))
        .limit(CLEANUP_BATCH)
        .with_for_update(skip_locked=True)  # concurrent sign-ins share the work, not wait
    )
    await session.execute(delete(W).where(W.id.in_(stale.scalar_subquery())))
    await delete_expired_logins(session)


async def delete_expired_logins(session: AsyncSession) -> None:
    """Delete up to CLEANUP_BATCH OIDC sign-ins that never came back in time."""
    login = models.WebLogin
    stale = (
        select(login.state_sha256)
        .where(login.expires <= datetime.now(UTC))
        .limit(CLEANUP_BATCH)
        .with_for_update(skip_locked=True)
    )
    await session.execute(delete(login).where(login.state_sha256.in_(stale.scalar_subquery())))


async def create(
    session: AsyncSession,
    settings: Settings,
    username: str,
    *,
    token: str | None = None,
    access_token: str | None = None,
) -> str:
    """A new session for `username`, made from a local `token` or an OIDC `access_token`;
    returns the cookie's secret. The caller commits."""
    await delete_expired(session, settings)
    secret = new_secret()
    now = datetime.now(UTC)
    session.add(
        W(
            secret_sha256=digest(secret),
            username=username,
            created=now,
            last_seen=now,
            expires=now + timedelta(hours=settings.web_session_hours),
            token_sha256=digest(token) if token is not None else None,
            access_token=access_token,
        )
    )
    return secret


async def authenticate(
    session: AsyncSession, settings: Settings, resolver: IdentityResolver, secret: str
) -> User | None:
    """The user of the live session named by the cookie's `secret`, or None.

    A session past a timeout, or whose credential no longer holds (token revoked or expired,
    access token refused by the provider), is deleted. Commits what it writes."""
    row = (
        await session.execute(
            select(W.id, W.username, W.last_seen, W.expires, W.token_sha256, W.access_token).where(
                W.secret_sha256 == digest(secret)
            )
        )
    ).first()
    if row is None:
        return None
    now = datetime.now(UTC)
    user: User | None = None
    if row.expires > now and row.last_seen > now - _idle(settings):
        user = await _user_of(session, resolver, row.token_sha256, row.access_token)
    if user is None or user.username != row.username:
        await session.execute(delete(W).where(W.id == row.id))
        await session.commit()
        return None
    if now - row.last_seen >= _touch_interval(settings):
        await session.execute(update(W).where(W.id == row.id).values(last_seen=now))
        await session.commit()
    return user


async def _user_of(
    session: AsyncSession,
    resolver: IdentityResolver,
    token_sha256: str | None,
    access_token: str | None,
) -> User | None:
    # A session made in one identity mode is no good in the other.
    if isinstance(resolver, LocalIdentity) and token_sha256:
        return await resolver.resolve_digest(token_sha256, session)
    if isinstance(resolver, OidcIdentity) and access_token:
        return await resolver.resolve(access_token, session)
    return None


async def end(session: AsyncSession, secret: str) -> None:
    """Delete the session the cookie names, if any. The caller commits."""
    await session.execute(delete(W).where(W.secret_sha256 == digest(secret)))
