"""Administration of local identities, provider keys, projects, quotas and the maintenance switch.

Used by the `nmpi-job-queue` CLI (and by the tests); each function works in the session it is
given and leaves committing to the caller.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from . import models
from .identity import ROLES_BY_RANK, digest, new_secret
from .schemas.service import ServiceState
from .units import Platform, usage_units

# A registered key is a secret the deployment made: long enough to be unguessable.
MIN_PROVIDER_KEY_CHARS = 32
MAX_PROVIDER_KEY_CHARS = 200


class AdminError(ValueError):
    """A request the administrator must correct; the message says what and how."""


async def add_user(
    session: AsyncSession,
    username: str,
    *,
    full_name: str = "",
    email: str = "",
    given_name: str = "",
    family_name: str = "",
) -> None:
    statement = insert(models.User).values(
        username=username,
        full_name=full_name,
        email=email,
        given_name=given_name,
        family_name=family_name,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[models.User.username],
            set_={
                "full_name": statement.excluded.full_name,
                "email": statement.excluded.email,
                "given_name": statement.excluded.given_name,
                "family_name": statement.excluded.family_name,
            },
        )
    )


async def add_collab(
    session: AsyncSession, collab: str, *, title: str = "", public: bool = False
) -> None:
    statement = insert(models.Collab).values(id=collab, title=title, public=public)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[models.Collab.id],
            set_={"title": statement.excluded.title, "public": statement.excluded.public},
        )
    )


async def add_member(session: AsyncSession, username: str, collab: str, role: str) -> None:
    if role not in ROLES_BY_RANK:
        raise AdminError(f"role must be one of {', '.join(ROLES_BY_RANK)}, not '{role}'")
    if await session.get(models.User, username) is None:
        raise AdminError(f"no user '{username}': add it first (nmpi-job-queue user add {username})")
    await add_collab_if_missing(session, collab)
    statement = insert(models.Membership).values(username=username, collab=collab, role=role)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[models.Membership.username, models.Membership.collab],
            set_={"role": role},
        )
    )


async def add_collab_if_missing(session: AsyncSession, collab: str) -> None:
    await session.execute(insert(models.Collab).values(id=collab).on_conflict_do_nothing())


async def remove_member(session: AsyncSession, username: str, collab: str) -> None:
    await session.execute(
        delete(models.Membership).where(
            models.Membership.username == username, models.Membership.collab == collab
        )
    )


async def create_token(
    session: AsyncSession, username: str, *, description: str = "", days: float | None = None
) -> str:
    """A new token for `username`; it is shown once, only its hash is kept."""
    if await session.get(models.User, username) is None:
        raise AdminError(f"no user '{username}': add it first (nmpi-job-queue user add {username})")
    token = new_secret()
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    session.add(
        models.Token(
            token_sha256=digest(token), username=username, description=description, expires=expires
        )
    )
    return token


async def revoke_tokens(session: AsyncSession, username: str) -> int:
    result = await session.execute(delete(models.Token).where(models.Token.username == username))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def create_provider_key(session: AsyncSession, provider: str, platforms: list[str]) -> str:
    unknown = sorted(set(platforms) - {p.value for p in Platform})
    if unknown or not platforms:
        known = ", ".join(p.value for p in Platform)
        raise AdminError(f"platforms must be among {known}; got {', '.join(unknown) or 'none'}")
    key = new_secret()
    session.add(
        models.ProviderKey(
            key_sha256=digest(key), provider=provider, platforms=sorted(set(platforms))
        )
    )
    return key


async def register_provider_key(
    session: AsyncSession, provider: str, platforms: list[str], key: str
) -> str:
    """Make `key` (chosen by the deployment, e.g. a vaulted secret) the provider's key for
    `platforms`: idempotent, so a deployment can run it every time. Returns what it did:
    "registered", "updated" (other platforms) or "unchanged"."""
    unknown = sorted(set(platforms) - {p.value for p in Platform})
    if unknown or not platforms:
        known = ", ".join(p.value for p in Platform)
        raise AdminError(f"platforms must be among {known}; got {', '.join(unknown) or 'none'}")
    if not MIN_PROVIDER_KEY_CHARS <= len(key) <= MAX_PROVIDER_KEY_CHARS or not key.isprintable():
        raise AdminError(
            f"a provider key must be {MIN_PROVIDER_KEY_CHARS} to {MAX_PROVIDER_KEY_CHARS} "
            f"printable characters; got {len(key)}"
        )
    wanted = sorted(set(platforms))
    existing = await session.scalar(
        select(models.ProviderKey).where(models.ProviderKey.key_sha256 == digest(key))
    )
    if existing is None:
        session.add(models.ProviderKey(key_sha256=digest(key), provider=provider, platforms=wanted))
        return "registered"
    if existing.provider != provider:
        raise AdminError(f"this key is already registered to provider '{existing.provider}'")
    if sorted(existing.platforms) == wanted:
        return "unchanged"
    existing.platforms = wanted
    return "updated"


async def create_project(
    session: AsyncSession,
    collab: str,
    owner: str,
    title: str,
    *,
    abstract: str = "",
    accepted: bool = True,
) -> uuid.UUID:
    today = date.today()
    project = models.Project(
        collab=collab,
        owner=owner,
        title=title,
        abstract=abstract,
        description="",
        submission_date=today,
        decision_date=today if accepted else None,
        accepted=accepted,
    )
    session.add(project)
    await session.flush()
    return project.id


async def add_quota(
    session: AsyncSession,
    project_id: uuid.UUID,
    platform: str,
    limit: float,
    units: str | None = None,
) -> int:
    if await session.get(models.Project, project_id) is None:
        raise AdminError(f"no project {project_id}")
    expected = usage_units(platform)
    if units is not None and units != expected:
        raise AdminError(f"{platform} usage is counted in {expected}, not {units}")
    quota = models.Quota(
        project_id=project_id, platform=platform, units=expected, limit=limit, usage=0.0
    )
    session.add(quota)
    await session.flush()
    return quota.id


async def set_service_status(session: AsyncSession, state: ServiceState, message: str = "") -> None:
    statement = insert(models.ServiceStatus).values(id=1, status=state.value, message=message)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[models.ServiceStatus.id],
            set_={"status": state.value, "message": message},
        )
    )


async def get_service_status(session: AsyncSession) -> tuple[str, str]:
    row = (
        await session.execute(select(models.ServiceStatus.status, models.ServiceStatus.message))
    ).first()
    return (row.status, row.message) if row else ("ok", "")
