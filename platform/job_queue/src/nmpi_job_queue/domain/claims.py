"""Claims as leases: a job handed out by GET /jobs/next is the claiming site's for a while.

The job stays `submitted` (still queued for its user) with claimed_by, claim_id and
claim_expires_at set. The site confirms the claim by moving the job on (PUT status validated,
mapped, running, or straight to finished/error): the claim is then held for good (expiry NULL),
since sites send nothing while a job runs for hours. A PUT that leaves the job `submitted`
renews the lease. A lease that ran out is taken back by the next poll of the platform, in the
same single statement that claims (so each job still goes to exactly one poller), which logs it
and counts it in nmpi_claims_expired_total.

Fencing: a PUT that carries a claim id (X-NMPI-Claim) must carry the job's current one. Real
sites send none: then the provider must be the one holding the claim. A site whose lease ran
out and whose job went to another site therefore gets 409; one whose lease ran out while no one
took the job may still confirm it (nothing was lost). Two pollers sharing one provider key are
told apart only by the claim id. See docs/provider-protocol.md.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import Update, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .. import models

CLAIM_HEADER = "X-NMPI-Claim"
CLAIM_EXPIRES_HEADER = "X-NMPI-Claim-Expires"

log = logging.getLogger("nmpi_job_queue")

CLAIMS = Counter(
    "nmpi_claims",
    "Jobs handed out to a hardware site (GET /jobs/next/{platform} answered 200): the "
    "monitoring's sign that the platform's site is polling",
    ["platform"],
)
CLAIMS_EXPIRED = Counter(
    "nmpi_claims_expired_total",
    "Claims not confirmed in time: the job went back to the queue and was handed out again",
    ["platform"],
)


class ClaimConflictError(Exception):
    """A provider update that does not come from the job's current claim (answered 409)."""


@dataclass(frozen=True)
class LapsedClaim:
    """The claim a new one replaced because its lease had run out."""

    provider: str | None
    claim_id: uuid.UUID
    expired_at: datetime | None


def _claim_statement(platform: str, provider: str, lease_seconds: int) -> Update:
    # The oldest submitted job without a live lease, locked in the same statement that claims
    # it: SKIP LOCKED lets concurrent pollers pass over a row another one is taking. The CTE
    # also hands back the lease it replaces, if any, so that an expiry can be reported.
    oldest = (
        select(
            models.Job.id,
            models.Job.claimed_by.label("lapsed_provider"),
            models.Job.claim_id.label("lapsed_claim"),
            models.Job.claim_expires_at.label("lapsed_at"),
        )
        .where(
            models.Job.hardware_platform == platform,
            models.Job.status == "submitted",
            or_(models.Job.claim_expires_at.is_(None), models.Job.claim_expires_at <= func.now()),
        )
        .order_by(models.Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .cte("oldest")
    )
    return (
        update(models.Job)
        .where(models.Job.id == oldest.c.id)
        .values(
            claimed_by=provider,
            claim_id=uuid.uuid4(),
            claim_expires_at=func.now() + timedelta(seconds=lease_seconds),
        )
        .returning(models.Job, oldest.c.lapsed_provider, oldest.c.lapsed_claim, oldest.c.lapsed_at)
    )


async def claim_next(
    session: AsyncSession, platform: str, provider: str, lease_seconds: int
) -> tuple[models.Job, LapsedClaim | None] | None:
    """Claim the platform's oldest job that no live lease holds (uncommitted); None if none."""
    row = (
        await session.execute(
            _claim_statement(platform, provider, lease_seconds),
            execution_options={"synchronize_session": False},
        )
    ).one_or_none()
    if row is None:
        return None
    job, lapsed_provider, lapsed_claim, lapsed_at = row
    lapsed = LapsedClaim(lapsed_provider, lapsed_claim, lapsed_at) if lapsed_claim else None
    return job, lapsed


def report_claimed(job: models.Job) -> None:
    """Once a claim is committed: counted per platform."""
    CLAIMS.labels(job.hardware_platform).inc()


def report_lapsed(job: models.Job, lapsed: LapsedClaim) -> None:
    """Once the new claim is committed: a log line and the counter for the one it replaced."""
    CLAIMS_EXPIRED.labels(job.hardware_platform).inc()
    log.warning(
        "claim expired, job handed out again",
        extra={
            "job_id": job.id,
            "platform": job.hardware_platform,
            "expired_provider": lapsed.provider,
            "expired_claim": str(lapsed.claim_id),
            "expired_at": lapsed.expired_at.isoformat() if lapsed.expired_at else None,
            "provider": job.claimed_by,
            "claim": str(job.claim_id),
        },
    )


def check_holder(job: models.Job, provider: str, claim: uuid.UUID | None) -> None:
    """Raise ClaimConflictError unless this update may come from the job's current claim: strictly
    by claim id when one is sent, by provider otherwise (real sites send none)."""
    if claim is not None:
        if job.claim_id == claim and job.claimed_by == provider:
            return
        if job.claim_id is None:
            why = "the job is not claimed"
        elif job.claim_id == claim:
            why = "the claim belongs to another provider"
        else:
            why = "the claim expired and the job was handed out again"
        raise ClaimConflictError(f"claim {claim} is not the current claim of job {job.id}: {why}")
    if job.claimed_by is None or job.claimed_by == provider:
        return
    raise ClaimConflictError(
        f"job {job.id} is claimed by another provider: if you had claimed it, your claim "
        "expired and the job was handed out again"
    )


def after_update(job: models.Job, provider: str, now: datetime, lease_seconds: int) -> None:
    """Confirm or renew the claim after an accepted provider update."""
    if job.status == "removed":
        return  # never handed out again: nothing to hold or renew
    if job.status == "submitted":
        if job.claimed_by == provider:  # renew (also a lapsed lease that no one took)
            job.claim_expires_at = now + timedelta(seconds=lease_seconds)
        return
    if job.claimed_by is None:  # moved on without GET /jobs/next (or claimed before leases)
        job.claimed_by = provider
        job.claim_id = uuid.uuid4()
    job.claim_expires_at = None  # confirmed: held for good


def claim_headers(job: models.Job, provider: str) -> dict[str, str]:
    """The claim the caller holds on the job, if any, for the reply's headers."""
    if job.claim_id is None or job.claimed_by != provider:
        return {}
    headers = {CLAIM_HEADER: str(job.claim_id)}
    if job.claim_expires_at is not None and job.status == "submitted":
        headers[CLAIM_EXPIRES_HEADER] = job.claim_expires_at.isoformat()
    return headers
