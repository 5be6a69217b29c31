"""The hardware providers' side: claim the next job, report progress, results and usage."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import Update, select, update

from .. import models
from ..dependencies import CurrentProvider, DbSession
from ..domain import data_items, quotas, states
from ..domain import jobs as domain
from ..openapi import error_response
from ..schemas.jobs import Job, JobStatus, JobUpdate
from ..units import usage_units

router = APIRouter(tags=["providers"])


# Oldest submitted job of the platform, claimed in the same statement: SKIP LOCKED lets
# concurrent pollers pass over a row another one is taking, so each job goes to exactly one.
def _claim(platform: str) -> Update:
    oldest = (
        select(models.Job.id)
        .where(models.Job.hardware_platform == platform, models.Job.status == "submitted")
        .order_by(models.Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(models.Job)
        .where(models.Job.id == oldest)
        .values(status="validated")
        .returning(models.Job)
    )


def _forbidden_platform(platform: str) -> HTTPException:
    return HTTPException(
        status.HTTP_403_FORBIDDEN, detail=f"this API key does not serve the {platform} queue"
    )


@router.get("/jobs/next/{platform}")
async def take_next_job(platform: str, session: DbSession, provider: CurrentProvider) -> Job:
    """Claim the oldest submitted job of `platform` (it becomes `validated`); 404 when none."""
    if not provider.serves(platform):
        raise _forbidden_platform(platform)
    job = await session.scalar(_claim(platform), execution_options={"synchronize_session": False})
    if job is None:
        await session.rollback()
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no {platform} job is waiting")
    await session.commit()
    return domain.to_schema(job)


@router.put(
    "/jobs/{job_id}",
    responses={
        400: error_response("resource_usage.units do not match the platform's units"),
        409: error_response("A status change that the job's state does not allow"),
    },
)
async def update_job(
    job_id: domain.JobId, body: JobUpdate, session: DbSession, provider: CurrentProvider
) -> Job:
    """Status, results, provenance, usage and log of a job; repeating a PUT changes nothing more."""
    job = await domain.get_visible(session, provider, job_id, lock=True)
    current = JobStatus(job.status)
    if body.status is not None:
        if body.status not in states.PROVIDER_SETTABLE and body.status != current:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail=f"providers cannot set status {body.status.value}",
            )
        try:
            states.check_transition(current, body.status)
        except states.TransitionError as error:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
        job.status = body.status.value
        if body.status in states.TERMINAL and job.timestamp_completion is None:
            job.timestamp_completion = datetime.now(UTC)
    if body.output_data is not None:
        job.output_repository = body.output_data.repository
        job.output_data = data_items.merge(job.output_data, body.output_data.files)
    if body.provenance is not None:
        job.provenance = body.provenance
    if body.resource_usage is not None:
        expected = usage_units(job.hardware_platform)
        if body.resource_usage.units != expected:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail=f"resource_usage.units must be '{expected}' for {job.hardware_platform}, "
                f"not '{body.resource_usage.units}'",
            )
        # The job's usage is a total: charge only what it adds to what was charged before.
        delta = body.resource_usage.value - (job.resource_usage or 0.0)
        job.resource_usage = body.resource_usage.value
        await quotas.charge(session, job.collab, job.hardware_platform, delta)
    if body.log is not None:
        await domain.write_log(session, job_id, body.log, append=False)
    await session.commit()
    log = await domain.load_log(session, job_id) if body.log is not None else None
    return domain.to_schema(job, log=log)
