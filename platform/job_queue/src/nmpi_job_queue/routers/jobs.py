"""Jobs as users see them: list, read, submit, remove."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import ColumnElement, delete

from .. import limits, models, paging
from ..dependencies import (
    AppSettings,
    AsAdmin,
    Caller,
    CurrentUser,
    DbSession,
    require_admin,
    require_viewable,
)
from ..domain import data_items, job_lists, quotas, states
from ..domain import jobs as domain
from ..identity import Provider
from ..openapi import error_response
from ..schemas.jobs import Job, JobFields, JobStatus, JobSubmission
from ..units import Platform

router = APIRouter(prefix="/jobs", tags=["jobs"])
log = logging.getLogger("nmpi_job_queue.jobs")

IGNORED_FIELDS_HEADER = {
    "description": "Present when the submission had unknown fields, which were ignored: "
    '299 nmpi-job-queue "unknown fields ignored: <names>"',
    "schema": {"type": "string"},
}


# Left out of each job by fields=summary: the script (up to 1 M characters), and the log and
# comments, which a list never fills (null) but which a summary drops as keys too.
SUMMARY_LEAVES_OUT = {"code", "log", "comments"}


def _refuse(name: str, message: str) -> RequestValidationError:
    """A 422 in the app's format (validation.validation_failed) for query parameter `name`."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": message}])


@router.get(
    "/",
    response_model=list[Job],
    responses={200: {"description": "The jobs; with fields=summary without code, log, comments"}},
)
async def list_jobs(
    request: Request,
    response: Response,
    session: DbSession,
    caller: Caller,
    status_: Annotated[list[JobStatus] | None, Query(alias="status")] = None,
    tags: Annotated[list[str] | None, Query()] = None,
    collab: Annotated[list[str] | None, Query()] = None,
    user_id: Annotated[list[str] | None, Query()] = None,
    hardware_platform: Annotated[list[str] | None, Query()] = None,
    date_range_start: datetime | None = None,
    date_range_end: datetime | None = None,
    submitted_after: Annotated[
        datetime | None,
        Query(
            description="only jobs submitted at or after this ISO 8601 time (UTC if it has no "
            "offset; send '+' as %2B)"
        ),
    ] = None,
    submitted_before: Annotated[
        datetime | None,
        Query(description="only jobs submitted before this ISO 8601 time (UTC if no offset)"),
    ] = None,
    search: Annotated[
        str | None,
        Query(
            max_length=limits.SEARCH_MAX_CHARS,
            description="all digits: the job with this id; otherwise jobs whose command or one "
            "of whose tags contains this text, ignoring case",
        ),
    ] = None,
    fields: Annotated[
        JobFields,
        Query(description="summary: each job without `code`, `log` and `comments` (lighter lists)"),
    ] = JobFields.full,
    size: paging.PageSize = paging.DEFAULT_PAGE_SIZE,
    from_index: paging.FromIndex = 0,
    before_id: paging.BeforeId = None,
) -> list[Job] | Response:
    """Jobs, newest first (removed jobs never). Without `collab`, a user sees only their own
    jobs. Paged: a `Link: <...>; rel="next"` header gives the next page's URL, with the same
    filters."""
    conditions: list[ColumnElement[bool]] = []
    # Which index the query reads (see domain/job_lists.py): the collabs if given, else the
    # users, else (a provider's list) the platforms; any other filter is checked per row.
    listing: job_lists.JobListing
    if isinstance(caller, Provider):
        platforms = sorted(set(hardware_platform or caller.platforms) & caller.platforms)
        if not platforms:
            return []
        if collab:
            listing = job_lists.JobListing("collab", collab)
        elif user_id:
            listing = job_lists.JobListing("user_id", user_id)
        else:
            listing = job_lists.JobListing("hardware_platform", platforms)
        if listing.key != "hardware_platform":
            conditions.append(models.Job.hardware_platform.in_(platforms))
        if user_id and listing.key != "user_id":
            conditions.append(models.Job.user_id.in_(user_id))
    else:
        if collab:
            await require_viewable(session, caller, collab, "jobs")
            listing = job_lists.JobListing("collab", collab)
            if user_id:
                conditions.append(models.Job.user_id.in_(user_id))
        elif caller.is_admin and user_id:
            listing = job_lists.JobListing("user_id", user_id)
        else:  # their own jobs (none, if they asked for someone else's)
            mine = not user_id or caller.username in user_id
            listing = job_lists.JobListing("user_id", [caller.username] if mine else [])
        if hardware_platform:
            conditions.append(models.Job.hardware_platform.in_(hardware_platform))
    if status_:
        asked = states.listed_statuses(status_)
        listing.statuses = [s for s in job_lists.LISTED_STATUSES if s in asked]
    if tags:
        conditions.append(models.Job.tags.overlap(tags))
    if date_range_start:
        conditions.append(models.Job.timestamp_submission >= domain.as_utc(date_range_start))
    if date_range_end:
        conditions.append(models.Job.timestamp_submission <= domain.as_utc(date_range_end))
    # Half-open, [after, before): consecutive ranges neither overlap nor leave gaps.
    after = domain.as_utc(submitted_after) if submitted_after else None
    before = domain.as_utc(submitted_before) if submitted_before else None
    if after and before and after > before:
        raise _refuse("submitted_after", "must not be later than submitted_before")
    if after:
        conditions.append(models.Job.timestamp_submission >= after)
    if before:
        conditions.append(models.Job.timestamp_submission < before)
    if search is not None:
        try:
            matching = job_lists.search_condition(search)
        except ValueError as error:
            raise _refuse("search", str(error)) from None
        if matching is not None:
            conditions.append(matching)
            if not job_lists.is_job_id(search.strip()):
                await session.execute(job_lists.FORCE_CUSTOM_PLAN)
    listing.conditions = conditions
    if listing.empty:
        return []
    limit = paging.page_size(size)
    query, parameters = job_lists.page_query(
        listing, limit=limit + 1, offset=from_index, before_id=before_id
    )
    rows = (await session.execute(query, parameters)).scalars().all()
    if len(rows) > limit:
        rows = rows[:limit]
        paging.link_next(request, response, before_id=rows[-1].id)
    jobs = [domain.to_schema(job) for job in rows]
    if fields is JobFields.summary:
        summary = JSONResponse(
            [job.model_dump(mode="json", exclude=SUMMARY_LEAVES_OUT) for job in jobs]
        )
        if "link" in response.headers:
            summary.headers["Link"] = response.headers["link"]
        return summary
    return jobs


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
