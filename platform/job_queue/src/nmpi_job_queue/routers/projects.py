"""Resource requests (projects) and their quotas."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from sqlalchemy import delete, or_, select

from .. import models, paging
from ..dependencies import (
    AsAdmin,
    Caller,
    CurrentUser,
    DbSession,
    require_admin,
    require_viewable,
)
from ..domain import projects as domain
from ..identity import Provider, User
from ..openapi import error_response
from ..schemas.projects import (
    Project,
    ProjectStatus,
    ProjectSubmission,
    ProjectUpdate,
    Quota,
    QuotaSubmission,
    QuotaUpdate,
)
from ..units import Platform, usage_units

QuotaId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the quota's id")]

router = APIRouter(prefix="/projects", tags=["projects"])

_DECISIONS = (ProjectStatus.accepted, ProjectStatus.rejected)


@router.get("/")
async def list_projects(
    request: Request,
    response: Response,
    session: DbSession,
    user: CurrentUser,
    status_: Annotated[list[ProjectStatus] | None, Query(alias="status")] = None,
    collab: Annotated[list[str] | None, Query()] = None,
    owner: Annotated[list[str] | None, Query()] = None,
    size: paging.PageSize = paging.DEFAULT_PAGE_SIZE,
    from_index: paging.FromIndex = 0,
) -> list[Project]:
    """Resource requests of the collabs the caller may view (all of them, for admins), those in
    preparation first, then by submission date, newest first. Paged: see the `Link` header."""
    query = select(models.Project)
    if collab:
        await require_viewable(session, user, collab, "resource requests")
        query = query.where(models.Project.collab.in_(collab))
    elif not user.is_admin:
        query = query.where(domain.visible_condition(user))
    if owner:
        query = query.where(models.Project.owner.in_(owner))
    if status_:
        query = query.where(or_(*(domain.status_condition(s) for s in set(status_))))
    # A collab's resource requests are few: offset paging is cheap enough for them.
    limit = paging.page_size(size)
    query = (
        query.order_by(models.Project.submission_date.desc().nulls_first(), models.Project.id)
        .offset(from_index)
        .limit(limit + 1)
    )
    rows = list((await session.execute(query)).scalars())
    if len(rows) > limit:
        rows = rows[:limit]
        paging.link_next(request, response, from_index=from_index + limit)
    quotas = await domain.load_quotas(session, [p.id for p in rows])
    return [domain.to_schema(p, quotas[p.id]) for p in rows]


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    responses={404: error_response("The collab does not exist or the caller may not edit it")},
)
async def create_project(body: ProjectSubmission, session: DbSession, user: CurrentUser) -> Project:
    """A new resource request, in preparation or submitted for review ("under review")."""
    if not user.can_edit(body.collab):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"collab '{body.collab}' not found or you may not create resource requests "
            "in it (editor or administrator role needed)",
        )
    if body.status in _DECISIONS:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="a new resource request must be 'in preparation' or 'under review'; only "
            "platform administrators accept or reject one (PUT /projects/{id}?as_admin=true)",
        )
    project = models.Project(
        id=uuid.uuid4(),
        collab=body.collab,
        owner=user.username,
        title=body.title,
        abstract=body.abstract,
        description=body.description or "",
        accepted=False,
    )
    domain.set_status(project, body.status)
    session.add(project)
    await session.commit()
    await session.refresh(project)
    return domain.to_schema(project)


@router.get("/{project_id}")
async def get_project(project_id: uuid.UUID, session: DbSession, user: CurrentUser) -> Project:
    project = await domain.get_visible(session, user, project_id)
    quotas = await domain.load_quotas(session, [project.id])
    return domain.to_schema(project, quotas[project.id])


def _admin(user: User, as_admin: bool) -> bool:
    if as_admin:
        require_admin(user, as_admin)
    return as_admin


@router.put("/{project_id}")
async def update_project(
    project_id: uuid.UUID,
    body: ProjectUpdate,
    session: DbSession,
    user: CurrentUser,
    as_admin: AsAdmin = False,
) -> Project:
    """Edit or submit a request in preparation; administrators (as_admin=true) decide on it."""
    project = await domain.get_visible(session, user, project_id, lock=True)
    admin = _admin(user, as_admin)
    if not admin and not domain.can_edit(user, project):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"only the owner or an editor of collab '{project.collab}' may edit "
            "this resource request",
        )
    current = domain.status_of(project)
    if current is not ProjectStatus.in_preparation and not admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"resource request {project_id} has been submitted (status: {current.value}) "
            "and can no longer be edited",
        )
    if body.status in _DECISIONS and not admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="only platform administrators may accept or reject a resource request "
            "(as_admin=true)",
        )
    if body.title is not None:
        project.title = body.title
    if body.abstract is not None:
        project.abstract = body.abstract
    if body.description is not None:
        project.description = body.description
    if body.owner is not None:
        project.owner = body.owner
    if body.status is not None:
        domain.set_status(project, body.status)
    await session.commit()
    quotas = await domain.load_quotas(session, [project.id])
    return domain.to_schema(project, quotas[project.id])


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(
    project_id: uuid.UUID, session: DbSession, user: CurrentUser, as_admin: AsAdmin = False
) -> Response:
    """Delete a request still in preparation (administrators: any request, with its quotas)."""
    project = await domain.get_visible(session, user, project_id, lock=True)
    if not _admin(user, as_admin):
        if not domain.can_edit(user, project):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"only the owner or an editor of collab '{project.collab}' may delete "
                "this resource request",
            )
        current = domain.status_of(project)
        if current is not ProjectStatus.in_preparation:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"resource request {project_id} has been submitted "
                f"(status: {current.value}); only requests in preparation can be deleted",
            )
    await session.execute(delete(models.Project).where(models.Project.id == project_id))
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- quotas -----------------------------------------------------------------------------


async def _project_for(
    session: DbSession, caller: User | Provider, project_id: uuid.UUID, *, lock: bool = False
) -> models.Project:
    """Users see the projects they may view; providers any project (its quotas are filtered)."""
    if isinstance(caller, User):
        return await domain.get_visible(session, caller, project_id, lock=lock)
    project = await session.get(models.Project, project_id)
    if project is None:
        raise domain.not_found(project_id)
    return project


async def _quota(
    session: DbSession,
    caller: User | Provider,
    project_id: uuid.UUID,
    quota_id: int,
    *,
    lock: bool = False,
) -> models.Quota:
    await _project_for(session, caller, project_id)
    query = select(models.Quota).where(
        models.Quota.id == quota_id, models.Quota.project_id == project_id
    )
    if lock:
        query = query.with_for_update()
    quota = (await session.execute(query)).scalar_one_or_none()
    if quota is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"no quota {quota_id} in resource request {project_id}",
        )
    return quota


@router.get("/{project_id}/quotas/")
async def list_quotas(project_id: uuid.UUID, session: DbSession, caller: Caller) -> list[Quota]:
    await _project_for(session, caller, project_id)
    quotas = (await domain.load_quotas(session, [project_id]))[project_id]
    if isinstance(caller, Provider):
        quotas = [q for q in quotas if caller.serves(q.platform)]
    return [domain.quota_to_schema(q) for q in quotas]


@router.get("/{project_id}/quotas/{quota_id}")
async def get_quota(
    project_id: uuid.UUID, quota_id: QuotaId, session: DbSession, caller: Caller
) -> Quota:
    quota = await _quota(session, caller, project_id, quota_id)
    if isinstance(caller, Provider) and not caller.serves(quota.platform):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"no quota {quota_id} in resource request {project_id} on your platforms",
        )
    return domain.quota_to_schema(quota)


@router.post("/{project_id}/quotas/", status_code=status.HTTP_201_CREATED)
async def add_quota(
    project_id: uuid.UUID,
    body: QuotaSubmission,
    session: DbSession,
    user: CurrentUser,
    as_admin: AsAdmin = False,
) -> Quota:
    """Give a resource request a quota on one platform (platform administrators only)."""
    require_admin(user, as_admin)
    await domain.get_visible(session, user, project_id)
    known = {p.value for p in Platform}
    if body.platform not in known:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"unknown platform '{body.platform}' (known: {', '.join(sorted(known))})",
        )
    expected = usage_units(body.platform)
    if body.units != expected:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"{body.platform} usage is counted in '{expected}', not '{body.units}'",
        )
    quota = models.Quota(
        project_id=project_id, platform=body.platform, units=expected, limit=body.limit, usage=0.0
    )
    session.add(quota)
    await session.commit()
    await session.refresh(quota)
    return domain.quota_to_schema(quota)


@router.put("/{project_id}/quotas/{quota_id}")
async def update_quota(
    project_id: uuid.UUID,
    quota_id: QuotaId,
    body: QuotaUpdate,
    session: DbSession,
    caller: Caller,
    as_admin: AsAdmin = False,
) -> Quota:
    """Set a quota's usage (and limit): administrators, or the provider serving its platform."""
    if isinstance(caller, User):
        require_admin(caller, as_admin)
    quota = await _quota(session, caller, project_id, quota_id, lock=True)
    if isinstance(caller, Provider) and not caller.serves(quota.platform):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"this API key does not serve {quota.platform}: it may not update the quota",
        )
    quota.usage = body.usage
    if body.limit is not None:
        quota.limit = body.limit
    await session.commit()
    return domain.quota_to_schema(quota)
