"""A job's log: everyone who sees the job reads it, its provider replaces or extends it."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import PlainTextResponse

from ..dependencies import Caller, CurrentProvider, DbSession
from ..domain import jobs as domain

router = APIRouter(tags=["logs"])


@router.get("/jobs/{job_id}/log", response_class=PlainTextResponse)
async def read_log(job_id: domain.JobId, session: DbSession, caller: Caller) -> str:
    await domain.get_visible(session, caller, job_id)
    return await domain.load_log(session, job_id)


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


@router.put("/jobs/{job_id}/log", response_class=PlainTextResponse, openapi_extra=_TEXT_BODY)
async def replace_log(
    job_id: domain.JobId, request: Request, session: DbSession, provider: CurrentProvider
) -> str:
    """Replace the job's log with the request body (text/plain)."""
    content = await _text_body(request)
    await domain.get_visible(session, provider, job_id)
    await domain.write_log(session, job_id, content, append=False)
    await session.commit()
    return await domain.load_log(session, job_id)


@router.patch("/jobs/{job_id}/log", response_class=PlainTextResponse, openapi_extra=_TEXT_BODY)
async def append_log(
    job_id: domain.JobId, request: Request, session: DbSession, provider: CurrentProvider
) -> str:
    """Append the request body (text/plain) to the job's log."""
    content = await _text_body(request)
    await domain.get_visible(session, provider, job_id)
    await domain.write_log(session, job_id, content, append=True)
    await session.commit()
    return await domain.load_log(session, job_id)
