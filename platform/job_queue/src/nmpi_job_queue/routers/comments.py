"""Comments on a job: its viewers read them; its author, its collab's members (any role) and
administrators add them; only a comment's author edits or deletes it."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from .. import models
from ..dependencies import Caller, CurrentUser, DbSession
from ..domain import jobs as domain
from ..schemas.jobs import Comment, CommentBody

router = APIRouter(tags=["comments"])


@router.get("/jobs/{job_id}/comments/")
async def list_comments(job_id: domain.JobId, session: DbSession, caller: Caller) -> list[Comment]:
    await domain.get_visible(session, caller, job_id)
    return [domain.comment_to_schema(c) for c in await domain.load_comments(session, job_id)]


@router.post("/jobs/{job_id}/comments/", status_code=status.HTTP_201_CREATED)
async def add_comment(
    job_id: domain.JobId, body: CommentBody, session: DbSession, user: CurrentUser
) -> Comment:
    job = await domain.get_visible(session, user, job_id)
    if not domain.can_view(user, job):  # a public collab's job: anyone reads, members comment
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"only members of collab '{job.collab}' may comment on its jobs",
        )
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
