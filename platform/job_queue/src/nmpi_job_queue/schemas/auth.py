"""Browser sign-in: the web app's session (docs/web-sessions.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .. import limits
from ..settings import IdentityMode


class AuthConfig(BaseModel):
    identity_mode: IdentityMode
    # Where the browser goes to sign in at the OIDC provider; null: sign in with a token.
    login_url: str | None


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        min_length=1,
        max_length=limits.SIGN_IN_TOKEN_MAX_CHARS,
        description="an API token (local mode) or the provider's access token (oidc mode)",
    )


class WebUser(BaseModel):
    username: str
    is_admin: bool
    identity_mode: IdentityMode
