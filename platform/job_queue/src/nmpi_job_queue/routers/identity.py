"""Who the caller is: the userinfo endpoint (local identity mode) and the caller's collabs."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from ..dependencies import AppSettings, CurrentUser
from ..openapi import error_response
from ..schemas.service import UserInfo
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
async def my_collabs(user: CurrentUser) -> list[str]:
    """Ids of the collabs where the caller may submit jobs (editor or administrator role).

    A list of ids, as the reference answers: its Job Manager app uses each item as the
    collab's id. The reference lists only those that already have a resource request; here
    all of them, since a collab's first job gets an automatic test project anyway.
    """
    return [c for c in user.collabs if user.role_in(c) in ("editor", "administrator")]
