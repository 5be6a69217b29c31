"""Who is calling: users (Bearer tokens, local or OIDC) and hardware providers (API keys)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from . import models
from .settings import Settings

ROLES_BY_RANK = ("viewer", "editor", "administrator")


def digest(secret: str) -> str:
    """Tokens and API keys are random 256-bit strings: SHA-256 is the right hash for them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class User:
    username: str
    # Team roles as EBRAINS IAM spells them: collab-<collab id>-<viewer|editor|administrator>
    team_roles: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    admin_collab: str = "neuromorphic-platform-admin"

    def role_in(self, collab: str) -> str | None:
        if collab == f"private-{self.username}":
            return "administrator"
        best: str | None = None
        prefix = f"collab-{collab}-"
        for role in self.team_roles:
            if role.startswith(prefix):
                name = role[len(prefix) :]
                if name in ROLES_BY_RANK and (
                    best is None or ROLES_BY_RANK.index(name) > ROLES_BY_RANK.index(best)
                ):
                    best = name
        return best

    @property
    def collabs(self) -> list[str]:
        found = {
            role.removeprefix("collab-").rsplit("-", 1)[0]
            for role in self.team_roles
            if role.startswith("collab-") and role.rsplit("-", 1)[-1] in ROLES_BY_RANK
        }
        return sorted(found)

    @property
    def is_admin(self) -> bool:
        return self.role_in(self.admin_collab) in ("editor", "administrator")

    def can_view(self, collab: str, public: bool = False) -> bool:
        """`public`: the collab is public (see `public_collabs`), so anyone may view it."""
        return public or self.is_admin or self.role_in(collab) is not None

    def can_edit(self, collab: str) -> bool:
        return self.is_admin or self.role_in(collab) in ("editor", "administrator")


async def public_collabs(session: AsyncSession, collabs: Collection[str]) -> set[str]:
    """Which of `collabs` are public: every signed-in user may view (not change) what is in them.

    Public is a property of the collab in this service's database (`nmpi-job-queue collab add
    --public`), not of the caller's token, so it is looked up, and only for collabs the caller
    has no role in."""
    if not collabs:
        return set()
    rows = await session.execute(
        select(models.Collab.id).where(models.Collab.id.in_(collabs), models.Collab.public)
    )
    return set(rows.scalars())


@dataclass(frozen=True)
class Provider:
    name: str
    platforms: frozenset[str]

    def serves(self, platform: str) -> bool:
        return platform in self.platforms


class IdentityResolver(Protocol):
    async def resolve(self, token: str, session: AsyncSession) -> User | None: ...


class _TtlCache:
    """Token -> user for a short while, keyed by the token's digest (never the token)."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, User]] = {}

    def get(self, key: str) -> User | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, user: User) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.seconds, user)


class LocalIdentity:
    """Users, memberships and hashed tokens kept in the service's own database."""

    def __init__(self, settings: Settings, cache_seconds: float = 10.0) -> None:
        self.settings = settings
        self.cache = _TtlCache(cache_seconds)

    async def resolve(self, token: str, session: AsyncSession) -> User | None:
        return await self.resolve_digest(digest(token), session)

    async def resolve_digest(self, key: str, session: AsyncSession) -> User | None:
        """The user of the token whose SHA-256 is `key` (a web session keeps only that)."""
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        row = (
            await session.execute(
                select(models.User, models.Token.expires)
                .join(models.Token, models.Token.username == models.User.username)
                .where(models.Token.token_sha256 == key)
            )
        ).first()
        if row is None:
            return None
        db_user, expires = row
        if expires is not None and expires.timestamp() < time.time():
            return None
        memberships = (
            await session.execute(
                select(models.Membership.collab, models.Membership.role).where(
                    models.Membership.username == db_user.username
                )
            )
        ).all()
        roles = tuple(sorted(f"collab-{collab}-{role}" for collab, role in memberships))
        info = {
            "sub": db_user.username,
            "preferred_username": db_user.username,
            "name": db_user.full_name,
            "given_name": db_user.given_name,
            "family_name": db_user.family_name,
            "email": db_user.email,
            "roles": {"team": list(roles), "group": []},
        }
        user = User(db_user.username, roles, info, self.settings.admin_collab)
        self.cache.put(key, user)
        return user


class OidcIdentity:
    """Bearer tokens checked against an OIDC provider's userinfo endpoint (e.g. EBRAINS IAM)."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        assert settings.oidc_userinfo_url
        self.url = settings.oidc_userinfo_url
        self.settings = settings
        self.cache = _TtlCache(settings.oidc_cache_seconds)
        self.client = client or httpx.AsyncClient(timeout=settings.oidc_timeout)

    async def resolve(self, token: str, session: AsyncSession) -> User | None:
        key = digest(token)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        reply = await self.client.get(self.url, headers={"Authorization": f"Bearer {token}"})
        if reply.status_code in (401, 403):
            return None
        reply.raise_for_status()
        info = reply.json()
        username = info.get("preferred_username") or info.get("sub")
        if not username:
            return None
        roles = tuple(info.get("roles", {}).get("team", []))
        user = User(str(username), roles, info, self.settings.admin_collab)
        self.cache.put(key, user)
        return user


async def resolve_provider(api_key: str, session: AsyncSession) -> Provider | None:
    row = (
        await session.execute(
            select(models.ProviderKey.provider, models.ProviderKey.platforms).where(
                models.ProviderKey.key_sha256 == digest(api_key)
            )
        )
    ).first()
    if row is None:
        return None
    return Provider(row.provider, frozenset(row.platforms))
