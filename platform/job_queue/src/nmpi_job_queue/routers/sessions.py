"""Direct-access sessions on a hardware system: accounting of their resource usage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from sqlalchemy import select

from .. import models, paging
from ..dependencies import AppSettings, Caller, CurrentProvider, DbSession, require_viewable
from ..domain import quotas
from ..identity import Provider, User, public_collabs
from ..schemas.jobs import ResourceUsage
from ..schemas.service import Session, SessionCreation, SessionStatus, SessionUpdate
from ..units import usage_units

SessionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the session's id")]

router = APIRouter(prefix="/sessions", tags=["sessions"])

S = SessionStatus
# Which status may follow which; setting the current status again is always accepted.
_ALLOWED: dict[SessionStatus, frozenset[SessionStatus]] = {
    S.running: frozenset({S.finished, S.error, S.removed}),
    S.finished: frozenset({S.removed}),
    S.error: frozenset({S.removed}),
    S.removed: frozenset(),
}
_ENDED = frozenset({S.finished, S.error})


def _to_schema(row: models.Session) -> Session:
    return Session(
        id=row.id,
        resource_uri=f"/sessions/{row.id}",
        collab=row.collab,
        user_id=row.user_id,
        hardware_platform=row.hardware_platform,
        hardware_config=row.hardware_config,
        status=SessionStatus(row.status),
        timestamp_start=row.timestamp_start,
        timestamp_end=row.timestamp_end,
        resource_usage=ResourceUsage(
            value=row.resource_usage, units=usage_units(row.hardware_platform)
        ),
    )


def _can_view(caller: User | Provider, row: models.Session) -> bool:
    if isinstance(caller, Provider):
        return caller.serves(row.hardware_platform)
    return row.user_id == caller.username or caller.can_view(row.collab)


async def _get_visible(
    session: DbSession, caller: User | Provider, session_id: int, *, lock: bool = False
) -> models.Session:
    query = select(models.Session).where(models.Session.id == session_id)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None or not (
        _can_view(caller, row)
        or (isinstance(caller, User) and await public_collabs(session, [row.collab]))
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no session with id {session_id}")
    return row


@router.post("/", status_code=status.HTTP_201_CREATED)
async def start_session(
    body: SessionCreation, session: DbSession, provider: CurrentProvider, settings: AppSettings
) -> Session:
    """Record a direct-access session starting on one of the provider's platforms."""
    if not provider.serves(body.hardware_platform):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"this API key does not serve {body.hardware_platform}",
        )
    # As for jobs: a collab's first use of a platform gets a small test quota.
    available = await quotas.ensure_test_quota(
        session, body.collab, body.hardware_platform, body.user_id, settings.auto_test_quota
    )
    if not quotas.has_remaining(available):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"collab '{body.collab}' has no quota left for {body.hardware_platform}",
        )
    row = models.Session(
        collab=body.collab,
        user_id=body.user_id,
        hardware_platform=body.hardware_platform,
        hardware_config=body.hardware_config,
        status=S.running.value,
        resource_usage=0.0,
    )
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return _to_schema(row)


@router.get("/")
async def list_sessions(
    request: Request,
    response: Response,
    session: DbSession,
    caller: Caller,
    collab: Annotated[list[str] | None, Query()] = None,
    status_: Annotated[list[SessionStatus] | None, Query(alias="status")] = None,
    hardware_platform: Annotated[list[str] | None, Query()] = None,
    size: paging.PageSize = paging.DEFAULT_PAGE_SIZE,
    from_index: paging.FromIndex = 0,
    before_id: paging.BeforeId = None,
) -> list[Session]:
    """Sessions, newest first: a provider's platforms; a user's own, or those of `collab`.
    Paged: see the `Link` header."""
    query = select(models.Session)
    if isinstance(caller, Provider):
        platforms = set(hardware_platform or caller.platforms) & caller.platforms
        query = query.where(models.Session.hardware_platform.in_(platforms))
        if collab:
            query = query.where(models.Session.collab.in_(collab))
    else:
        if collab:
            await require_viewable(session, caller, collab, "sessions")
            query = query.where(models.Session.collab.in_(collab))
        else:
            query = query.where(models.Session.user_id == caller.username)
        if hardware_platform:
            query = query.where(models.Session.hardware_platform.in_(hardware_platform))
    if status_:
        query = query.where(models.Session.status.in_([s.value for s in status_]))
    if before_id is not None:  # sessions.id is an INTEGER: a larger bound means all of them
        query = query.where(models.Session.id <= min(before_id - 1, 2**31 - 1))
    limit = paging.page_size(size)
    query = query.order_by(models.Session.id.desc()).offset(from_index).limit(limit + 1)
    rows = list((await session.execute(query)).scalars())
    if len(rows) > limit:
        rows = rows[:limit]
        paging.link_next(request, response, before_id=rows[-1].id)
    return [_to_schema(row) for row in rows]


@router.get("/{session_id}")
async def get_session(session_id: SessionId, session: DbSession, caller: Caller) -> Session:
    return _to_schema(await _get_visible(session, caller, session_id))


@router.put("/{session_id}")
async def update_session(
    session_id: SessionId, body: SessionUpdate, session: DbSession, provider: CurrentProvider
) -> Session:
    """Status and total usage of a session; only the change in usage is charged to quotas."""
    row = await _get_visible(session, provider, session_id, lock=True)
    expected = usage_units(row.hardware_platform)
    if body.resource_usage.units != expected:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"resource_usage.units must be '{expected}' for {row.hardware_platform}, "
            f"not '{body.resource_usage.units}'",
        )
    current = SessionStatus(row.status)
    if body.status != current and body.status not in _ALLOWED[current]:
        allowed = ", ".join(sorted(s.value for s in _ALLOWED[current])) or "none"
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"a {current.value} session cannot become {body.status.value} "
            f"(allowed from {current.value}: {allowed})",
        )
    row.status = body.status.value
    if body.status in _ENDED and row.timestamp_end is None:
        row.timestamp_end = datetime.now(UTC)
    # The usage sent is the session's total: charge only what it adds to what was charged.
    delta = body.resource_usage.value - row.resource_usage
    row.resource_usage = body.resource_usage.value
    await quotas.charge(session, row.collab, row.hardware_platform, delta)
    await session.commit()
    return _to_schema(row)
