"""Resource requests (projects): derived status, visibility and turning rows into API shapes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from fastapi import HTTPException, status
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from .. import models
from ..identity import User, public_collabs
from ..schemas.projects import Project, ProjectStatus, Quota

P = models.Project


def status_of(project: models.Project) -> ProjectStatus:
    """No submission date: in preparation; accepted; no decision yet: under review; rejected."""
    if project.submission_date is None:
        return ProjectStatus.in_preparation
    if project.accepted:
        return ProjectStatus.accepted
    if project.decision_date is None:
        return ProjectStatus.under_review
    return ProjectStatus.rejected


def status_condition(wanted: ProjectStatus) -> ColumnElement[bool]:
    """The SQL form of `status_of(project) == wanted`."""
    submitted = P.submission_date.is_not(None)
    if wanted is ProjectStatus.in_preparation:
        return P.submission_date.is_(None)
    if wanted is ProjectStatus.accepted:
        return and_(submitted, P.accepted.is_(True))
    if wanted is ProjectStatus.under_review:
        return and_(submitted, P.accepted.is_(False), P.decision_date.is_(None))
    return and_(submitted, P.accepted.is_(False), P.decision_date.is_not(None))


def set_status(project: models.Project, new: ProjectStatus, today: date | None = None) -> None:
    """Store `new` so that `status_of` derives it; dates already set are kept where they fit."""
    today = today or date.today()
    if new is ProjectStatus.in_preparation:
        project.submission_date = None
        project.decision_date = None
        project.accepted = False
    elif new is ProjectStatus.under_review:
        project.submission_date = project.submission_date or today
        project.decision_date = None
        project.accepted = False
    else:
        if status_of(project) is not new:
            project.decision_date = today
        project.submission_date = project.submission_date or today
        project.accepted = new is ProjectStatus.accepted


def quota_to_schema(quota: models.Quota) -> Quota:
    return Quota(
        id=quota.id,
        resource_uri=f"/projects/{quota.project_id}/quotas/{quota.id}",
        project=f"/projects/{quota.project_id}",
        platform=quota.platform,
        units=quota.units,
        limit=quota.limit,
        usage=quota.usage,
    )


def to_schema(project: models.Project, quotas: Sequence[models.Quota] = ()) -> Project:
    return Project(
        id=project.id,
        context=project.id,
        resource_uri=f"/projects/{project.id}",
        collab=project.collab,
        owner=project.owner,
        title=project.title,
        abstract=project.abstract,
        description=project.description or "",
        status=status_of(project),
        submission_date=project.submission_date,
        decision_date=project.decision_date,
        quotas=[quota_to_schema(q) for q in quotas],
    )


def not_found(project_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no resource request {project_id}")


async def can_view(session: AsyncSession, user: User, project: models.Project) -> bool:
    if user.is_admin or project.owner == user.username or user.can_view(project.collab):
        return True
    return project.collab in await public_collabs(session, [project.collab])


def can_edit(user: User, project: models.Project) -> bool:
    return project.owner == user.username or user.can_edit(project.collab)


def visible_condition(user: User) -> ColumnElement[bool]:
    """Projects a (non-admin) user may see: own, in collabs with a role, or in public collabs."""
    collabs = [*user.collabs, f"private-{user.username}"]
    public = select(models.Collab.id).where(models.Collab.public)
    return or_(P.owner == user.username, P.collab.in_(collabs), P.collab.in_(public))


async def get_visible(
    session: AsyncSession, user: User, project_id: uuid.UUID, *, lock: bool = False
) -> models.Project:
    """The project, if it exists and the user may see it; 404 otherwise (existence not leaked)."""
    query = select(models.Project).where(models.Project.id == project_id)
    if lock:
        query = query.with_for_update()
    project = (await session.execute(query)).scalar_one_or_none()
    if project is None or not await can_view(session, user, project):
        raise not_found(project_id)
    return project


async def load_quotas(
    session: AsyncSession, project_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[models.Quota]]:
    found: dict[uuid.UUID, list[models.Quota]] = {pid: [] for pid in project_ids}
    if not project_ids:
        return found
    rows = await session.execute(
        select(models.Quota)
        .where(models.Quota.project_id.in_(project_ids))
        .order_by(models.Quota.id)
    )
    for quota in rows.scalars():
        found[quota.project_id].append(quota)
    return found
