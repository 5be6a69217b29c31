"""Quotas: may a collab submit to a platform, and charging usage to its quotas."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .. import models
from ..units import usage_units


async def platform_quotas(
    session: AsyncSession, collab: str, platform: str, *, lock: bool = False
) -> list[models.Quota]:
    query = (
        select(models.Quota)
        .join(models.Project, models.Project.id == models.Quota.project_id)
        .where(
            models.Project.collab == collab,
            models.Project.accepted.is_(True),
            models.Quota.platform == platform,
        )
        .order_by(models.Quota.id)
    )
    if lock:
        query = query.with_for_update(of=models.Quota)
    return list((await session.execute(query)).scalars())


async def ensure_test_quota(
    session: AsyncSession, collab: str, platform: str, owner: str, limit: float
) -> list[models.Quota]:
    """A collab's first submission to a platform gets a small accepted test project."""
    quotas = await platform_quotas(session, collab, platform)
    if quotas or limit <= 0:
        return quotas
    # Two first submissions at once must not make two test projects: serialise on the pair.
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtext(f"test-quota:{collab}:{platform}")))
    )
    quotas = await platform_quotas(session, collab, platform)
    if quotas:
        return quotas
    today = date.today()
    project = models.Project(
        collab=collab,
        owner=owner,
        title=f"Test access to {platform} for collab {collab}",
        abstract="Created automatically on the collab's first submission to this platform.",
        description="",
        submission_date=today,
        decision_date=today,
        accepted=True,
    )
    session.add(project)
    await session.flush()
    quota = models.Quota(
        project_id=project.id,
        platform=platform,
        units=usage_units(platform),
        limit=limit,
        usage=0.0,
    )
    session.add(quota)
    await session.flush()
    return [quota]


def has_remaining(quotas: list[models.Quota]) -> bool:
    return any(quota.usage < quota.limit for quota in quotas)


async def charge(session: AsyncSession, collab: str, platform: str, amount: float) -> None:
    """Charge `amount` (platform units) to the collab's quotas for the platform.

    Usage fills the quotas in order, each up to its limit; what is left over goes to the last
    one (usage already consumed is never dropped). A negative amount (a provider lowering a
    total it reported) gives back usage, latest quotas first. A collab without any quota for
    the platform has nothing to charge: its jobs were accepted under the automatic test quota
    or before quotas were configured.
    """
    if amount == 0:
        return
    quotas = await platform_quotas(session, collab, platform, lock=True)
    if not quotas:
        return
    if amount > 0:
        for quota in quotas[:-1]:
            room = max(0.0, quota.limit - quota.usage)
            taken = min(room, amount)
            quota.usage += taken
            amount -= taken
        quotas[-1].usage += amount
    else:
        refund = -amount
        for quota in reversed(quotas):
            given = min(quota.usage, refund)
            quota.usage -= given
            refund -= given
