"""A job's log, comments, tags and output data, as users (and providers, where stated) see them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Response, status
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select

from .. import models
from ..dependencies import Caller, CurrentUser, DbSession
from ..domain import data_items
from ..domain import jobs as domain
from ..identity import Provider
from ..schemas.jobs import Comment, CommentBody, DataSet, Tag

router = APIRouter(tags=["job details"])


@router.get("/jobs/{job_id}/log", response_class=PlainTextResponse)
async def read_log(job_id: domain.JobId, session: DbSession, caller: Caller) -> str:
    await domain.get_visible(session, caller, job_id)
    return await domain.load_log(session, job_id)


# --- comments ---------------------------------------------------------------------------


@router.get("/jobs/{job_id}/comments/")
async def list_comments(job_id: domain.JobId, session: DbSession, caller: Caller) -> list[Comment]:
    await domain.get_visible(session, caller, job_id)
    return [domain.comment_to_schema(c) for c in await domain.load_comments(session, job_id)]


@router.post("/jobs/{job_id}/comments/", status_code=status.HTTP_201_CREATED)
async def add_comment(
    job_id: domain.JobId, body: CommentBody, session: DbSession, user: CurrentUser
) -> Comment:
    await domain.get_visible(session, user, job_id)
    comment = models.Comment(job_id=job_id, user_id=user.username, content=body.content)
    session.add(comment)
    await session.commit()
    await session.refresh(comment)
    return domain.comment_to_schema(comment)


async def _own_comment(
    session: DbSession, user: CurrentUser, job_id: int, comment_id: int
) -> models.Comment:
    await domain.get_visible(session, user, job_id)
    comment = await session.get(models.Comment, comment_id)
    if comment is None or comment.job_id != job_id:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no comment {comment_id} on job {job_id}"
        )
    if comment.user_id != user.username:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="only its author may change a comment"
        )
    return comment


@router.put("/jobs/{job_id}/comments/{comment_id}")
async def edit_comment(
    job_id: domain.JobId,
    comment_id: domain.CommentId,
    body: CommentBody,
    session: DbSession,
    user: CurrentUser,
) -> Comment:
    comment = await _own_comment(session, user, job_id, comment_id)
    comment.content = body.content
    await session.commit()
    return domain.comment_to_schema(comment)


@router.delete("/jobs/{job_id}/comments/{comment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_comment(
    job_id: domain.JobId, comment_id: domain.CommentId, session: DbSession, user: CurrentUser
) -> Response:
    comment = await _own_comment(session, user, job_id, comment_id)
    await session.delete(comment)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- tags -------------------------------------------------------------------------------

TagList = Annotated[list[Tag], Body(max_length=100)]


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
    job.tags = sorted(set(job.tags) | set(tags))
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
    collab: Annotated[str | None, Query(max_length=200)] = None,
) -> list[str]:
    """Tags used in a collab's jobs (or, without `collab`, in the caller's own jobs)."""
    tag = func.unnest(models.Job.tags).label("tag")
    query = select(tag).where(models.Job.status != "removed")
    if collab is not None:
        if not user.can_view(collab):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"you may not view collab {collab}"
            )
        query = query.where(models.Job.collab == collab)
    else:
        query = query.where(models.Job.user_id == user.username)
    rows = (await session.execute(select(query.subquery().c.tag).distinct())).scalars()
    return sorted(rows)


# --- output data ------------------------------------------------------------------------


@router.get("/jobs/{job_id}/output_data")
async def output_data(job_id: domain.JobId, session: DbSession, caller: Caller) -> DataSet:
    job = await domain.get_visible(session, caller, job_id)
    return domain.to_schema(job).output_data or DataSet(repository="none", files=[])


@router.put("/jobs/{job_id}/output_data")
async def update_output_data(
    job_id: domain.JobId, body: DataSet, session: DbSession, caller: Caller
) -> DataSet:
    """Providers add output items (idempotent, by URL). Copying a job's outputs to another
    repository (what the client's copy_data_to_storage asks) is not offered by this deployment."""
    job = await domain.get_visible(session, caller, job_id, lock=True)
    if not isinstance(caller, Provider):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"copying output data to '{body.repository}' is not supported by this "
            "deployment: outputs stay at the hardware site and are served from their URLs",
        )
    job.output_repository = body.repository
    job.output_data = data_items.merge(job.output_data, body.files)
    await session.commit()
    return domain.to_schema(job).output_data or DataSet(repository=body.repository, files=[])
