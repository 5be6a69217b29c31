"""Jobs as users see them: list, read, submit, remove."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import delete, select

from .. import models
from ..dependencies import (
    AppSettings,
    AsAdmin,
    Caller,
    CurrentUser,
    DbSession,
    require_admin,
    require_viewable,
)
from ..domain import data_items, quotas, states
from ..domain import jobs as domain
from ..identity import Provider
from ..openapi import error_response
from ..schemas.jobs import Job, JobStatus, JobSubmission
from ..units import Platform

router = APIRouter(prefix="/jobs", tags=["jobs"])
log = logging.getLogger("nmpi_job_queue.jobs")

IGNORED_FIELDS_HEADER = {
    "description": "Present when the submission had unknown fields, which were ignored: "
    '299 nmpi-job-queue "unknown fields ignored: <names>"',
    "schema": {"type": "string"},
}


@router.get("/", response_model=list[Job])
async def list_jobs(
    session: DbSession,
    caller: Caller,
    status_: Annotated[list[JobStatus] | None, Query(alias="status")] = None,
    tags: Annotated[list[str] | None, Query()] = None,
    collab: Annotated[list[str] | None, Query()] = None,
    user_id: Annotated[list[str] | None, Query()] = None,
    hardware_platform: Annotated[list[str] | None, Query()] = None,
    date_range_start: datetime | None = None,
    date_range_end: datetime | None = None,
    size: Annotated[int, Query(ge=1, le=100_000)] = 10,
    from_index: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[Job]:
    """Jobs, newest first. Without `collab`, a user sees only their own jobs."""
    query = select(models.Job).where(models.Job.status != "removed")
    if isinstance(caller, Provider):
        platforms = set(hardware_platform or caller.platforms) & caller.platforms
        query = query.where(models.Job.hardware_platform.in_(platforms))
        if collab:
            query = query.where(models.Job.collab.in_(collab))
    else:
        if collab:
            require_viewable(caller, collab, "jobs")
            query = query.where(models.Job.collab.in_(collab))
        elif not caller.is_admin or not user_id:
            query = query.where(models.Job.user_id == caller.username)
        if hardware_platform:
            query = query.where(models.Job.hardware_platform.in_(hardware_platform))
    if user_id:
        query = query.where(models.Job.user_id.in_(user_id))
    if status_:
        query = query.where(models.Job.status.in_(states.listed_statuses(status_)))
    if tags:
        query = query.where(models.Job.tags.overlap(tags))
    if date_range_start:
        query = query.where(models.Job.timestamp_submission >= domain.as_utc(date_range_start))
    if date_range_end:
        query = query.where(models.Job.timestamp_submission <= domain.as_utc(date_range_end))
    query = query.order_by(models.Job.id.desc()).offset(from_index).limit(size)
    rows = (await session.execute(query)).scalars().all()
    return [domain.to_schema(job) for job in rows]


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"headers": {"Warning": IGNORED_FIELDS_HEADER}},
        400: error_response("Unknown hardware_platform (or a body that cannot be read)"),
        403: error_response("No quota left for this platform in the collab"),
        404: error_response("No such collab, or the caller may not submit to it"),
    },
)
async def submit_job(
    body: JobSubmission,
    session: DbSession,
    user: CurrentUser,
    settings: AppSettings,
    response: Response,
) -> Job:
    """Submit a job to a platform's queue, in a collab where the caller may edit.

    Unknown fields are ignored (as by the reference service) and named in a Warning header."""
    if body.hardware_platform not in set(Platform):
        known = ", ".join(p.value for p in Platform)
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"unknown hardware_platform '{body.hardware_platform}' (known: {known})",
        )
    if not user.can_edit(body.collab):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"collab '{body.collab}' not found or you may not submit jobs to it "
            "(editor or administrator role needed)",
        )
    data_items.refuse_unsafe(body.input_data or [], "input_data")
    available = await quotas.ensure_test_quota(
        session, body.collab, body.hardware_platform, user.username, settings.auto_test_quota
    )
    if not quotas.has_remaining(available):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"collab '{body.collab}' has no quota left for {body.hardware_platform}: "
            "request resources with a resource request (POST /projects/)",
        )
    job = models.Job(
        code=body.code,
        command=body.command,
        collab=body.collab,
        user_id=user.username,
        status="submitted",
        hardware_platform=body.hardware_platform,
        hardware_config=body.hardware_config,
        input_data=[data_items.to_db(i) for i in body.input_data] if body.input_data else None,
        tags=sorted(set(body.tags or [])),
    )
    session.add(job)
    await session.commit()  # the INSERT returns the server defaults (eager_defaults)
    if body.model_extra:
        response.headers["Warning"] = domain.ignored_fields_warning(body.model_extra)
        log.info("unknown job fields ignored", extra={"fields": sorted(body.model_extra)[:20]})
    return domain.to_schema(job)


@router.get("/{job_id}")
async def get_job(
    job_id: domain.JobId,
    session: DbSession,
    caller: Caller,
    with_log: bool = False,
    with_comments: bool = False,
) -> Job:
    job = await domain.get_visible(session, caller, job_id)
    return domain.to_schema(
        job,
        log=await domain.load_log(session, job_id) if with_log else None,
        comments=await domain.load_comments(session, job_id) if with_comments else None,
    )


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        403: error_response("Neither the job's owner nor an administrator of its collab"),
        410: error_response("Already removed: the detail says by whom, when and why"),
    },
)
async def delete_job(
    job_id: domain.JobId,
    session: DbSession,
    user: CurrentUser,
    as_admin: AsAdmin = False,
    reason: Annotated[
        str | None, Query(max_length=1000, description="why, shown to the job's owner")
    ] = None,
) -> Response:
    """Mark a job removed: its owner, an administrator of its collab or a platform administrator
    may; who, when and why are kept. With as_admin=true a platform administrator deletes it for
    good (only the log line remains)."""
    job = await domain.get_visible(session, user, job_id, lock=True)
    audit = {"job_id": job_id, "owner": job.user_id, "collab": job.collab, "by": user.username}
    if as_admin:
        require_admin(user, as_admin)
        await session.execute(delete(models.Job).where(models.Job.id == job_id))
        await session.commit()
        log.info("job deleted", extra={**audit, "reason": reason})
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    # Editors may not remove a colleague's job (the reference allows only the owner and admins);
    # a collab's administrators may, as they answer for its work and its quota.
    if not (
        job.user_id == user.username or user.role_in(job.collab) == "administrator" or user.is_admin
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"only the job's owner ({job.user_id}), an administrator of collab "
            f"{job.collab} or a platform administrator may remove job {job_id}",
        )
    if job.status == "removed":  # platform administrators see removed jobs: keep the first record
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    job.status = "removed"
    job.removed_by = user.username
    job.removed_at = datetime.now(UTC)
    job.removal_reason = reason
    await session.commit()
    log.info("job removed", extra={**audit, "reason": reason})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
