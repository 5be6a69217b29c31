"""Service settings, read from NMPI_* environment variables and validated at start-up."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "NMPI_"


class IdentityMode(StrEnum):
    local = "local"  # users, memberships and tokens kept in the database
    oidc = "oidc"  # Bearer tokens validated against an OIDC userinfo endpoint


class SettingsError(RuntimeError):
    """Configuration that cannot be used; the message names each variable at fault."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # libpq-style URL; several hosts allowed: postgresql://u:p@h1:5432,h2:5432/nmpi
    database_url: Annotated[str, Field(pattern=r"^postgres(ql)?://")]
    # Connect to the writable member only, so a site that lost the leader cannot accept writes.
    database_target_session_attrs: str = "read-write"
    database_pool_size: Annotated[int, Field(ge=1, le=200)] = 10
    # One connection attempt over all the URL's hosts, and each host's share of it (libpq's
    # connect_timeout): a silent host (a partition drops packets, nothing refuses) is given up
    # after the second, and the next host tried. With N hosts, N - 1 silent ones use up to
    # (N - 1) * per-host seconds of the whole: keep the whole longer than that.
    database_connect_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    database_connect_timeout_per_host: Annotated[float, Field(gt=0, le=60)] = 2.0
    # The server cancels a statement after this; the client gives up on a silent server after
    # database_command_timeout (a partition without a TCP reset would otherwise hang requests,
    # pool pings and /readyz for minutes). The first must be shorter than the second.
    database_statement_timeout_ms: Annotated[int, Field(ge=0)] = 8_000
    database_command_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    # /readyz answers 503 rather than wait longer than this for the database.
    readyz_timeout: Annotated[float, Field(gt=0, le=60)] = 3.0

    identity_mode: IdentityMode = IdentityMode.local
    oidc_userinfo_url: str | None = None
    oidc_cache_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0
    oidc_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    # Browser sign-in by the authorization-code flow with PKCE (oidc mode; docs/web-sessions.md).
    # Without an issuer the web app signs in by pasting a token (POST /auth/session) only.
    oidc_issuer: str | None = None  # discovery: <issuer>/.well-known/openid-configuration
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None  # absent: a public client, PKCE only
    oidc_redirect_url: str | None = None  # the public https URL of /auth/callback
    oidc_scopes: str = "openid profile email"

    # Browser sessions (cookie): signed out after this long without a request, and after
    # this long in any case. Fractions are allowed (tests use seconds).
    web_session_idle_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 120.0
    web_session_hours: Annotated[float, Field(gt=0, le=7 * 24)] = 12.0

    # Editors of this collab are platform administrators.
    admin_collab: str = "neuromorphic-platform-admin"
    # Quota limit of the automatic test project a collab gets on its first submission
    # to a platform, in that platform's units; 0 disables automatic test projects.
    auto_test_quota: Annotated[float, Field(ge=0)] = 1.0
    # How long a worker trusts its cached copy of the maintenance switch.
    service_status_cache_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    # A job handed out by GET /jobs/next stays the site's for this long unless the site
    # confirms it (PUT validated/mapped/running) or renews it; then it goes back to the queue.
    # Long enough for a slow site's first PUT, short enough that a dead site's job is not lost.
    claim_lease_seconds: Annotated[int, Field(ge=1, le=86_400)] = 300

    log_level: str = "INFO"
    log_format: Annotated[str, Field(pattern="^(json|text)$")] = "json"

    @model_validator(mode="after")
    def _statement_before_command_timeout(self) -> Settings:
        if self.database_statement_timeout_ms / 1000 >= self.database_command_timeout:
            raise ValueError(
                f"{ENV_PREFIX}DATABASE_STATEMENT_TIMEOUT_MS ({self.database_statement_timeout_ms}) "
                f"must be shorter than {ENV_PREFIX}DATABASE_COMMAND_TIMEOUT "
                f"({self.database_command_timeout} s)"
            )
        return self

    @model_validator(mode="after")
    def _host_within_whole_connect_timeout(self) -> Settings:
        if self.database_connect_timeout_per_host > self.database_connect_timeout:
            raise ValueError(
                f"{ENV_PREFIX}DATABASE_CONNECT_TIMEOUT_PER_HOST "
                f"({self.database_connect_timeout_per_host} s) must not exceed "
                f"{ENV_PREFIX}DATABASE_CONNECT_TIMEOUT ({self.database_connect_timeout} s), "
                "the bound of the whole attempt over all hosts"
            )
        return self

    @model_validator(mode="after")
    def _oidc_needs_userinfo(self) -> Settings:
        if self.identity_mode is IdentityMode.oidc and not self.oidc_userinfo_url:
            raise ValueError(
                f"{ENV_PREFIX}OIDC_USERINFO_URL is required when {ENV_PREFIX}IDENTITY_MODE=oidc"
            )
        return self

    @model_validator(mode="after")
    def _oidc_login_complete(self) -> Settings:
        # Browser sign-in needs the issuer, the client id and where the provider sends users
        # back; a half-configured flow would fail only when someone tries to sign in.
        login = {
            "OIDC_ISSUER": self.oidc_issuer,
            "OIDC_CLIENT_ID": self.oidc_client_id,
            "OIDC_REDIRECT_URL": self.oidc_redirect_url,
        }
        given = [name for name, value in login.items() if value]
        if given and self.identity_mode is not IdentityMode.oidc:
            raise ValueError(
                f"{', '.join(ENV_PREFIX + n for n in given)} "
                f"{'applies' if len(given) == 1 else 'apply'} only when "
                f"{ENV_PREFIX}IDENTITY_MODE=oidc"
            )
        missing = [name for name, value in login.items() if not value]
        if given and missing:
            raise ValueError(
                f"{', '.join(ENV_PREFIX + n for n in missing)} must be set with "
                f"{', '.join(ENV_PREFIX + n for n in given)} (browser sign-in)"
            )
        if self.oidc_scopes and "openid" not in self.oidc_scopes.split():
            raise ValueError(f"{ENV_PREFIX}OIDC_SCOPES must include 'openid'")
        return self

    @model_validator(mode="after")
    def _idle_within_lifetime(self) -> Settings:
        if self.web_session_idle_minutes > self.web_session_hours * 60:
            raise ValueError(
                f"{ENV_PREFIX}WEB_SESSION_IDLE_MINUTES ({self.web_session_idle_minutes:g}) must "
                f"not exceed {ENV_PREFIX}WEB_SESSION_HOURS ({self.web_session_hours:g} h)"
            )
        return self

    @property
    def oidc_login_enabled(self) -> bool:
        return self.identity_mode is IdentityMode.oidc and bool(self.oidc_issuer)


def describe_errors(error: ValidationError) -> str:
    """One line per problem, each naming the environment variable."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = f"{ENV_PREFIX}{field.upper()}" if field else "configuration"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required but not set"
        lines.append(f"{name}: {message}")
    return "; ".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()  # filled from the environment
    except ValidationError as error:
        raise SettingsError(f"invalid settings: {describe_errors(error)}") from None
