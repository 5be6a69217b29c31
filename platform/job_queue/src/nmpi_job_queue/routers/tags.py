"""Tags of a job, and the tags used in a collab."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, status
from sqlalchemy import func, select

from .. import limits, models
from ..dependencies import Caller, CurrentUser, DbSession, require_viewable
from ..domain import jobs as domain
from ..schemas.jobs import Tag

router = APIRouter(tags=["tags"])

TagList = Annotated[list[Tag], Body(max_length=limits.TAGS_MAX)]


@router.get("/jobs/{job_id}/tags/")
async def job_tags(job_id: domain.JobId, session: DbSession, caller: Caller) -> list[str]:
    job = await domain.get_visible(session, caller, job_id)
    return list(job.tags)


@router.post("/jobs/{job_id}/tags/")
async def add_tags(
    job_id: domain.JobId, tags: TagList, session: DbSession, user: CurrentUser
) -> list[str]:
    job = await domain.get_visible(session, user, job_id, lock=True)
    if not domain.can_edit(user, job):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may not tag this job")
    tagged = set(job.tags) | set(tags)
    if len(tagged) > limits.TAGS_MAX and len(tagged) > len(job.tags):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"a job has at most {limits.TAGS_MAX} tags (job {job_id} has {len(job.tags)}, "
            f"this would make {len(tagged)})",
        )
    job.tags = sorted(tagged)
    await session.commit()
    return list(job.tags)


@router.delete("/jobs/{job_id}/tags/")
async def remove_tags(
    job_id: domain.JobId, tags: TagList, session: DbSession, user: CurrentUser
) -> list[str]:
    job = await domain.get_visible(session, user, job_id, lock=True)
    if not domain.can_edit(user, job):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may not untag this job")
    job.tags = sorted(set(job.tags) - set(tags))
    await session.commit()
    return list(job.tags)


@router.get("/tags/")
async def collab_tags(
    session: DbSession,
    user: CurrentUser,
    collab: Annotated[str | None, Query(max_length=limits.COLLAB_MAX_CHARS)] = None,
) -> list[str]:
    """Tags used in a collab's jobs (or, without `collab`, in the caller's own jobs)."""
    tag = func.unnest(models.Job.tags).label("tag")
    query = select(tag).where(models.Job.status != "removed")
    if collab is not None:
        await require_viewable(session, user, [collab], "tags")
        query = query.where(models.Job.collab == collab)
    else:
        query = query.where(models.Job.user_id == user.username)
    rows = (await session.execute(select(query.subquery().c.tag).distinct())).scalars()
    return sorted(rows)
