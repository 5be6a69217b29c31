"""The hardware providers' side: claim the next job, report progress, results and usage.

The protocol (claim, lease, confirm, renew, fencing, removal) is in docs/provider-protocol.md.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel
from sqlalchemy import func, select

from ..dependencies import AppSettings, ClaimHeader, CurrentProvider, DbSession, require_holder
from ..domain import claims, data_items, quotas, states
from ..domain import jobs as domain
from ..openapi import error_response
from ..schemas.jobs import Job, JobStatus, JobUpdate
from ..units import usage_units

router = APIRouter(tags=["providers"])

STATUS_IGNORED_HEADER = "X-NMPI-Status-Ignored"


class Claim(BaseModel):
    id: uuid.UUID
    expires_at: datetime
    lease_seconds: int


class ClaimedJob(Job):
    """The job as GET /jobs/next hands it out: still `submitted`, with the claim."""

    claim: Claim


def _forbidden_platform(platform: str) -> HTTPException:
    return HTTPException(
        status.HTTP_403_FORBIDDEN, detail=f"this API key does not serve the {platform} queue"
    )


@router.get("/jobs/next/{platform}")
async def take_next_job(
    platform: str,
    session: DbSession,
    provider: CurrentProvider,
    settings: AppSettings,
    response: Response,
) -> ClaimedJob:
    """Claim the oldest waiting job of `platform` for a lease of NMPI_CLAIM_LEASE_SECONDS; it
    stays `submitted` until the site confirms it (PUT status validated, mapped or running).
    404 when none."""
    if not provider.serves(platform):
        raise _forbidden_platform(platform)
    lease = settings.claim_lease_seconds
    claimed = await claims.claim_next(session, platform, provider.name, lease)
    if claimed is None:
        await session.rollback()
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no {platform} job is waiting")
    job, lapsed = claimed
    await session.commit()
    claims.report_claimed(job)
    if lapsed is not None:
        claims.report_lapsed(job, lapsed)
    response.headers.update(claims.claim_headers(job, provider.name))
    claim = Claim(id=job.claim_id, expires_at=job.claim_expires_at, lease_seconds=lease)
    return ClaimedJob(**dict(domain.to_schema(job)), claim=claim)


@router.put(
    "/jobs/{job_id}",
    responses={
        400: error_response("resource_usage.units do not match the platform's units"),
        409: error_response(
            "A status change that the job's state does not allow, or an update that does not "
            "come from the job's current claim (it expired and the job was handed out again)"
        ),
    },
)
async def update_job(
    job_id: domain.JobId,
    body: JobUpdate,
    session: DbSession,
    provider: CurrentProvider,
    settings: AppSettings,
    response: Response,
    claim: ClaimHeader = None,
) -> Job:
    """Status, results, provenance, usage and log of a job; repeating a PUT changes nothing more.
    Confirms (a status past `submitted`) or renews (no status change) the caller's claim.
    On a job its user removed, usage, log and outputs are recorded and the job stays removed:
    the status change is ignored and the X-NMPI-Status-Ignored header says so."""
    job = await domain.get_visible(session, provider, job_id, lock=True)
    require_holder(job, provider.name, claim)
    current = JobStatus(job.status)
    if body.status is not None and current is JobStatus.removed:
        # The site's last word on a job removed meanwhile carries its accounting: keep it.
        if body.status != current:
            response.headers[STATUS_IGNORED_HEADER] = (
                f"{body.status.value}: the job was removed; "
                "usage, outputs, provenance and log are recorded"
            )
        if body.status in states.TERMINAL and job.timestamp_completion is None:
            job.timestamp_completion = datetime.now(UTC)
    elif body.status is not None:
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
    now = await session.scalar(select(func.now()))  # the database's clock, as for the claim
    assert now is not None
    claims.after_update(job, provider.name, now, settings.claim_lease_seconds)
    await session.commit()
    response.headers.update(claims.claim_headers(job, provider.name))
    log = await domain.load_log(session, job_id) if body.log is not None else None
    return domain.to_schema(job, log=log)
