"""A job's log: everyone who sees the job reads it, its provider replaces or extends it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select

from .. import limits, models
from ..dependencies import Caller, ClaimHeader, CurrentProvider, DbSession, require_holder
from ..domain import jobs as domain
from ..openapi import error_response

router = APIRouter(tags=["logs"])


@router.get("/jobs/{job_id}/log", response_class=PlainTextResponse)
async def read_log(job_id: domain.JobId, session: DbSession, caller: Caller) -> str:
    await domain.get_visible(session, caller, job_id)
    return await domain.load_log(session, job_id)


_FENCED: dict[int | str, dict[str, Any]] = {
    409: error_response(
        "Not from the job's current claim (it expired and the job was handed out again)"
    )
}
_TEXT_BODY = {
    "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}
}


async def _text_body(request: Request) -> str:
    raw = await request.body()
    # PostgreSQL text cannot hold NUL characters: refuse them rather than fail with a 500.
    if b"\x00" in raw:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="the log must not contain NUL characters"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="the log must be UTF-8 text"
        ) from None


def _check_length(job_id: int, length: int) -> None:
    # Every read of the job with its log carries it: bounded like every other field.
    if length > limits.LOG_MAX_CHARS:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"a job's log has at most {limits.LOG_MAX_CHARS} characters (job {job_id}'s "
            f"would have {length}): send its tail, and publish the whole log as an output file",
        )


@router.put(
    "/jobs/{job_id}/log",
    response_class=PlainTextResponse,
    openapi_extra=_TEXT_BODY,
    responses=_FENCED,
)
async def replace_log(
    job_id: domain.JobId,
    request: Request,
    session: DbSession,
    provider: CurrentProvider,
    claim: ClaimHeader = None,
) -> str:
    """Replace the job's log with the request body (text/plain); from the job's current claim
    only (fenced like PUT /jobs/{id})."""
    content = await _text_body(request)
    _check_length(job_id, len(content))
    job = await domain.get_visible(session, provider, job_id, lock=True)
    require_holder(job, provider.name, claim)
    await domain.write_log(session, job_id, content, append=False)
    await session.commit()
    return await domain.load_log(session, job_id)


@router.patch(
    "/jobs/{job_id}/log",
    response_class=PlainTextResponse,
    openapi_extra=_TEXT_BODY,
    responses=_FENCED,
)
async def append_log(
    job_id: domain.JobId,
    request: Request,
    session: DbSession,
    provider: CurrentProvider,
    claim: ClaimHeader = None,
) -> str:
    """Append the request body (text/plain) to the job's log; from the job's current claim only
    (fenced like PUT /jobs/{id})."""
    content = await _text_body(request)
    _check_length(job_id, len(content))
    # The job's row lock serializes appends, so that two cannot both pass the check below.
    job = await domain.get_visible(session, provider, job_id, lock=True)
    require_holder(job, provider.name, claim)
    current = await session.scalar(
        select(func.char_length(models.JobLog.content)).where(models.JobLog.job_id == job_id)
    )
    _check_length(job_id, (current or 0) + len(content))
    await domain.write_log(session, job_id, content, append=True)
    await session.commit()
    return await domain.load_log(session, job_id)
