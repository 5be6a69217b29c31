"""A job's output data: read by its viewers, published by its provider."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from ..dependencies import Caller, DbSession
from ..domain import data_items
from ..domain import jobs as domain
from ..identity import Provider
from ..schemas.jobs import DataSet

router = APIRouter(tags=["output data"])


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
    job.output_data = data_items.merge(job.output_data, body.files, "files")
    await session.commit()
    return domain.to_schema(job).output_data or DataSet(repository=body.repository, files=[])
