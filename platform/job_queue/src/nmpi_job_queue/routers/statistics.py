"""Public statistics (no authentication): queue lengths, job counts, durations and usage."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import ColumnElement, func, select, text

from .. import models
from ..dependencies import DbSession
from ..openapi import error_response
from ..schemas.service import DateRangeCount, JobDuration, QueueLength, ResourceUsageTotal
from ..units import Platform, usage_units

router = APIRouter(prefix="/statistics", tags=["statistics"])

MAX_SPAN_DAYS = 3653  # ten years, leap days included
J = models.Job


class FinalStatus(StrEnum):
    finished = "finished"
    error = "error"


def _platforms(*found: dict[str, Any]) -> list[str]:
    """Every known platform, then any other platform that appears in the data."""
    known = [p.value for p in Platform]
    others = sorted({name for rows in found for name in rows} - set(known))
    return known + others


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _check_range(start: date | None, end: date | None) -> None:
    if start is None or end is None:
        return
    if end < start:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"end ({end.isoformat()}) must not be before start ({start.isoformat()})",
        )
    if (end - start).days > MAX_SPAN_DAYS:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"the range from {start.isoformat()} to {end.isoformat()} is longer than "
            "10 years: ask for a shorter one",
        )


def _submitted_within(start: date | None, end: date | None) -> list[ColumnElement[bool]]:
    """Conditions for jobs submitted from `start` to `end` (UTC days, both included)."""
    _check_range(start, end)
    conditions = []
    if start is not None:
        conditions.append(J.timestamp_submission >= _midnight(start))
    if end is not None:
        conditions.append(J.timestamp_submission < _midnight(end + timedelta(days=1)))
    return conditions


StartDate = Annotated[date | None, Query(description="first day (UTC) of job submission")]
EndDate = Annotated[date | None, Query(description="last day (UTC) of job submission, included")]


@router.get("/queue-length")
async def queue_length(session: DbSession) -> list[QueueLength]:
    """Jobs waiting (submitted) and running, for every platform."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = await session.execute(
        select(J.hardware_platform, J.status, func.count())
        .where(J.status.in_(("submitted", "running")))
        .group_by(J.hardware_platform, J.status)
    )
    for platform, job_status, count in rows:
        counts[platform][job_status] = count
    return [
        QueueLength(
            queue_name=platform,
            submitted=counts.get(platform, {}).get("submitted", 0),
            running=counts.get(platform, {}).get("running", 0),
        )
        for platform in _platforms(counts)
    ]


_COUNT_BY_INTERVAL = text(
    """
    SELECT hardware_platform,
           ((timestamp_submission AT TIME ZONE 'UTC')::date - CAST(:start AS date))
               / CAST(:interval AS integer) AS bucket,
           count(*) AS n
    FROM jobs
    WHERE timestamp_submission >= :start_ts AND timestamp_submission < :end_ts
    GROUP BY 1, 2
    """
)


@router.get(
    "/job-count", responses={400: error_response("Dates out of order or the range is too long")}
)
async def job_count(
    session: DbSession,
    start: Annotated[date, Query(description="first day (UTC)")],
    end: Annotated[date, Query(description="last day (UTC), included")],
    interval: Annotated[int, Query(ge=1, le=366, description="days per interval")] = 7,
) -> list[DateRangeCount]:
    """Jobs submitted per platform in each interval of `interval` days from `start` to `end`.

    Each item's `start` and `end` are its first and last day (both included); the last
    interval ends on `end` and may be shorter.
    """
    _check_range(start, end)
    rows = await session.execute(
        _COUNT_BY_INTERVAL,
        {
            "start": start,
            "interval": interval,
            "start_ts": _midnight(start),
            "end_ts": _midnight(end + timedelta(days=1)),
        },
    )
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    seen: dict[str, None] = {}
    for platform, bucket, n in rows:
        counts[bucket][platform] = n
        seen[platform] = None
    platforms = _platforms(seen)
    result = []
    first = start
    index = 0
    while first <= end:
        last = min(first + timedelta(days=interval - 1), end)
        found = counts.get(index, {})
        result.append(
            DateRangeCount(start=first, end=last, count={p: found.get(p, 0) for p in platforms})
        )
        first += timedelta(days=interval)
        index += 1
    return result


@router.get(
    "/job-duration", responses={400: error_response("Dates out of order or the range is too long")}
)
async def job_duration(
    session: DbSession,
    status_: Annotated[FinalStatus, Query(alias="status")] = FinalStatus.finished,
    start: StartDate = None,
    end: EndDate = None,
) -> list[JobDuration]:
    """Median and 90th percentile of completion minus submission time, in seconds."""
    seconds = func.extract("epoch", J.timestamp_completion - J.timestamp_submission)
    query = (
        select(
            J.hardware_platform,
            func.count(),
            func.percentile_cont(0.5).within_group(seconds),
            func.percentile_cont(0.9).within_group(seconds),
        )
        .where(J.status == status_.value, J.timestamp_completion.is_not(None))
        .where(*_submitted_within(start, end))
        .group_by(J.hardware_platform)
    )
    found: dict[str, tuple[int, float | None, float | None]] = {
        platform: (count, median, p90)
        for platform, count, median, p90 in await session.execute(query)
    }
    result = []
    for platform in _platforms(found):
        count, median, p90 = found.get(platform, (0, None, None))
        result.append(
            JobDuration(
                platform=platform,
                status=status_.value,
                count=count,
                median_seconds=None if median is None else float(median),
                p90_seconds=None if p90 is None else float(p90),
            )
        )
    return result


@router.get(
    "/resource-usage",
    responses={400: error_response("Dates out of order or the range is too long")},
)
async def resource_usage(
    session: DbSession, start: StartDate = None, end: EndDate = None
) -> list[ResourceUsageTotal]:
    """Resource usage of jobs, summed per platform, in each platform's units."""
    query = (
        select(J.hardware_platform, func.sum(J.resource_usage))
        .where(J.resource_usage.is_not(None), *_submitted_within(start, end))
        .group_by(J.hardware_platform)
    )
    found: dict[str, float] = {
        platform: float(total or 0.0) for platform, total in await session.execute(query)
    }
    return [
        ResourceUsageTotal(platform=p, units=usage_units(p), value=found.get(p, 0.0))
        for p in _platforms(found)
    ]
