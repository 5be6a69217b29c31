"""Turning stored jobs into API jobs, and who may see or change them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, status
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .. import models
from ..identity import Provider, User, public_collabs
from ..schemas.jobs import Comment, DataItem, DataSet, Job, JobStatus, ResourceUsage
from ..units import usage_units
from . import paths

MAX_JOB_ID = 2**63 - 1  # jobs.id is a BIGINT
MAX_COMMENT_ID = 2**31 - 1  # comments.id an INTEGER
NO_REPOSITORY = "none"  # output_data.repository of a job without outputs


# An integer outside its column's range (0, negative, past BIGINT) names no job: 404 as for a
# missing one, which the nmpi client reports as "No such job" (a 422 reaches the user as a
# list of validation errors), and the number never reaches PostgreSQL (where it would overflow).
def _job_id(job_id: Annotated[int, Path(description="the job's id")]) -> int:
    if not 1 <= job_id <= MAX_JOB_ID:
        raise not_found(job_id)
    return job_id


def _comment_id(comment_id: Annotated[int, Path(description="the comment's id")]) -> int:
    if not 1 <= comment_id <= MAX_COMMENT_ID:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no comment {comment_id}")
    return comment_id


JobId = Annotated[int, Depends(_job_id)]
CommentId = Annotated[int, Depends(_comment_id)]


def comment_to_schema(comment: models.Comment) -> Comment:
    return Comment(
        id=comment.id,
        job_id=comment.job_id,
        content=comment.content,
        user_id=comment.user_id,
        timestamp=comment.created_time,
        resource_uri=f"/jobs/{comment.job_id}/comments/{comment.id}",
    )


def _output_item(item: dict[str, Any]) -> DataItem:
    # Sites may publish outputs by URL only; the nmpi client needs a path to save them under.
    path = item.get("path") or paths.path_from_url(item["url"])
    return DataItem.model_validate({**item, "path": path})


def to_schema(
    job: models.Job,
    *,
    log: str | None = None,
    comments: Sequence[models.Comment] | None = None,
) -> Job:
    """Every field present, as in the reference's documents: null when unknown or not asked for
    (log, comments), while output_data is always a data set (its files possibly []): the nmpi
    client reads job["output_data"]["files"] of any finished job."""
    output = DataSet(
        repository=job.output_repository or NO_REPOSITORY,
        files=[_output_item(item) for item in job.output_data or []],
    )
    usage = None
    if job.resource_usage is not None:
        usage = ResourceUsage(value=job.resource_usage, units=usage_units(job.hardware_platform))
    return Job(
        id=job.id,
        resource_uri=f"/jobs/{job.id}",
        code=job.code,
        command=job.command,
        collab=job.collab,
        user_id=job.user_id,
        status=JobStatus(job.status),
        hardware_platform=job.hardware_platform,
        hardware_config=job.hardware_config,
        input_data=[DataItem.model_validate(i) for i in job.input_data or []],
        output_data=output,
        provenance=job.provenance,
        resource_usage=usage,
        tags=list(job.tags or []),
        timestamp_submission=job.timestamp_submission,
        timestamp_completion=job.timestamp_completion,
        comments=[comment_to_schema(c) for c in comments] if comments is not None else None,
        log=log,
        removed_by=job.removed_by,
        removed_at=job.removed_at,
        removal_reason=job.removal_reason,
    )


def ignored_fields_warning(names: Iterable[str]) -> str:
    """A Warning header (RFC 7234, code 299: "miscellaneous persistent warning") naming the
    unknown fields of a submission that were ignored. Names are cut short and ASCII-escaped: they
    come from the client and must fit a quoted header value."""
    names = list(names)
    shown = [json.dumps(name[:60])[1:-1] for name in names[:20]]
    more = f" and {len(names) - 20} more" if len(names) > 20 else ""
    return f'299 nmpi-job-queue "unknown fields ignored: {", ".join(shown)}{more}"'


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC for a query bound (naive means UTC). An offset that moves it past year 1
    or 9999 (which Python, hence asyncpg, cannot represent) clamps it to that end of the range,
    instead of failing with a 500."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == datetime.min.year else datetime.max).replace(
            tzinfo=UTC
        )


def not_found(job_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job with id {job_id}")


def can_view(caller: User | Provider, job: models.Job) -> bool:
    """As a member: the job's author, a role in its collab, an administrator (or its provider).
    Jobs of public collabs are visible to more users (`get_visible`), but only to read."""
    if isinstance(caller, Provider):
        return caller.serves(job.hardware_platform)
    if job.status == "removed" and not caller.is_admin:
        return False
    return job.user_id == caller.username or caller.can_view(job.collab)


def can_edit(user: User, job: models.Job) -> bool:
    return job.user_id == user.username or user.can_edit(job.collab)


def removal_detail(job: models.Job) -> str:
    """Who removed the job, when and why, for the users who could see it."""
    by = job.removed_by or "unknown"
    who = f"its owner ({by})" if by == job.user_id else f"{by}, an administrator,"
    when = f" on {job.removed_at:%Y-%m-%d %H:%M:%S %Z}" if job.removed_at else ""
    why = f": {job.removal_reason}" if job.removal_reason else ""
    return f"job {job.id} was removed by {who}{when}{why}"


async def get_visible(
    session: AsyncSession, caller: User | Provider, job_id: int, *, lock: bool = False
) -> models.Job:
    """The job, if it exists and the caller may see it; 404 otherwise (existence is not leaked).
    A removed job answers 410 with who removed it to the users who could see it before.

    Any user sees the (not removed) jobs of a public collab: routes that change a job must check
    `can_edit` (or `can_view`, for what members only may do) on what this returns."""
    query = select(models.Job).where(models.Job.id == job_id)
    if lock:
        query = query.with_for_update()
    job = (await session.execute(query)).scalar_one_or_none()
    if job is None:
        raise not_found(job_id)
    if (
        job.status == "removed"
        and isinstance(caller, User)
        and not caller.is_admin
        and (job.user_id == caller.username or caller.can_view(job.collab))
    ):
        raise HTTPException(status.HTTP_410_GONE, detail=removal_detail(job))
    if not can_view(caller, job) and not (
        isinstance(caller, User)
        and job.status != "removed"
        and await public_collabs(session, [job.collab])
    ):
        raise not_found(job_id)
    return job


async def load_log(session: AsyncSession, job_id: int) -> str:
    content = await session.scalar(
        select(models.JobLog.content).where(models.JobLog.job_id == job_id)
    )
    return content or ""


async def load_comments(session: AsyncSession, job_id: int) -> list[models.Comment]:
    return list(
        (
            await session.execute(
                select(models.Comment)
                .where(models.Comment.job_id == job_id)
                .order_by(models.Comment.id)
            )
        ).scalars()
    )


async def write_log(session: AsyncSession, job_id: int, content: str, *, append: bool) -> None:
    """Replace or extend a job's log (one row per job, created on first write)."""
    statement = insert(models.JobLog).values(job_id=job_id, content=content)
    new_content = (models.JobLog.content + statement.excluded.content) if append else content
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[models.JobLog.job_id], set_={"content": new_content}
        )
    )
