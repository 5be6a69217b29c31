"""Who the caller is: the userinfo endpoint (local identity mode) and the caller's collabs."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from .. import models
from ..dependencies import AppSettings, CurrentUser, DbSession
from ..openapi import error_response
from ..schemas.service import Collab, UserInfo
from ..settings import IdentityMode

router = APIRouter(tags=["identity"])


@router.get(
    "/userinfo",
    responses={404: error_response("Identity is delegated to an OIDC provider: ask its userinfo")},
)
async def userinfo(user: CurrentUser, settings: AppSettings) -> UserInfo:
    """OIDC-userinfo-shaped: point the nmpi client's `user_info_endpoint` here."""
    if settings.identity_mode is not IdentityMode.local:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail="identity is delegated: use the OIDC userinfo endpoint "
            f"{settings.oidc_userinfo_url}",
        )
    return UserInfo.model_validate(user.info)


@router.get("/collabs/")
async def my_collabs(user: CurrentUser, session: DbSession) -> list[Collab]:
    """Collabs the caller has a role in, plus public ones."""
    known = {
        row.id: row
        for row in (
            await session.execute(
                select(models.Collab).where(
                    models.Collab.id.in_(user.collabs) | models.Collab.public.is_(True)
                )
            )
        ).scalars()
    }
    ids = sorted(set(user.collabs) | set(known))
    return [
        Collab(
            id=cid,
            title=known[cid].title if cid in known else "",
            public=known[cid].public if cid in known else False,
            role=user.role_in(cid),
        )
        for cid in ids
    ]
