"""Browser sign-in at the OIDC provider: authorization code flow with PKCE (docs/web-sessions.md).

The service is the OIDC client; the browser only carries `state` and `code` through its
redirects. The ID token comes straight from the token endpoint over TLS, so its issuer,
audience, nonce and expiry are checked and its signature is not (OpenID Connect Core 3.1.3.7:
TLS server validation may stand in for it in this flow); who the user is then comes from the
userinfo endpoint, as for every Bearer token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from . import limits
from .settings import Settings

DEFAULT_NEXT = "/app/"
LOGIN_MINUTES = 10  # a sign-in must come back from the provider within this
DISCOVERY_CACHE_S = 3600.0
CLOCK_SKEW_S = 60  # leeway on the ID token's times
# A same-origin path in the web app: no scheme or host, no '//' (a host to the browser), no
# backslash (browsers read it as '/'), no dot segments, nothing percent-encoded that could be
# one of these.
_NEXT = re.compile(r"/app/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
_UNSAFE_IN_NEXT = re.compile(r"//|/\.\.?(/|$|\?)|%2e|%2f|%5c", re.IGNORECASE)


class OidcLoginError(Exception):
    """The sign-in cannot go on; the message says why (and what the provider said)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def safe_next(path: str | None) -> str:
    """`path` if it is a path of the web app (under /app/), else /app/."""
    if (
        not path
        or len(path) > limits.NEXT_PATH_MAX_CHARS
        or not _NEXT.fullmatch(path)
        or _UNSAFE_IN_NEXT.search(path)
    ):
        return DEFAULT_NEXT
    return path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def code_challenge(verifier: str) -> str:
    """PKCE S256 (RFC 7636): BASE64URL(SHA256(verifier))."""
    return _b64url(hashlib.sha256(verifier.encode()).digest())


@dataclass(frozen=True)
class Login:
    """What one sign-in keeps (models.WebLogin) and sends (the authorization request)."""

    state: str
    nonce: str
    code_verifier: str

    @classmethod
    def new(cls) -> Login:
        # 43-128 characters for the verifier (RFC 7636 4.1): 64 random bytes give 86.
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64))


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    token_auth_methods: tuple[str, ...]


@dataclass(frozen=True)
class Tokens:
    access_token: str
    id_claims: dict[str, Any]


class OidcLogin:
    """The provider's endpoints (discovered, cached an hour) and the two legs of the flow."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        assert settings.oidc_issuer
        assert settings.oidc_client_id
        assert settings.oidc_redirect_url
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret
        self.redirect_url = settings.oidc_redirect_url
        self.scopes = settings.oidc_scopes
        self.client = client or httpx.AsyncClient(timeout=settings.oidc_timeout)
        self._metadata: ProviderMetadata | None = None
        self._read_at = float("-inf")

    async def metadata(self) -> ProviderMetadata:
        if self._metadata and time.monotonic() - self._read_at < DISCOVERY_CACHE_S:
            return self._metadata
        url = f"{self.issuer}/.well-known/openid-configuration"
        try:
            reply = await self.client.get(url)
            reply.raise_for_status()
            document = reply.json()
            metadata = ProviderMetadata(
                issuer=str(document["issuer"]),
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                token_auth_methods=tuple(
                    document.get("token_endpoint_auth_methods_supported")
                    or ("client_secret_basic",)  # the default (OIDC Discovery 1.0, 3)
                ),
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            raise OidcLoginError(
                f"the OIDC provider's discovery document {url} cannot be read: {error}", status=502
            ) from None
        # OIDC Discovery 4.3: the document must name the issuer it was fetched for.
        if metadata.issuer.rstrip("/") != self.issuer:
            raise OidcLoginError(
                f"the discovery document names issuer {metadata.issuer!r}, not the configured "
                f"{self.issuer!r} (NMPI_OIDC_ISSUER)",
                status=502,
            )
        self._metadata, self._read_at = metadata, time.monotonic()
        return metadata

    async def authorization_url(self, login: Login) -> str:
        metadata = await self.metadata()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_url,
                "scope": self.scopes,
                "state": login.state,
                "nonce": login.nonce,
                "code_challenge": code_challenge(login.code_verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return f"{metadata.authorization_endpoint}{separator}{query}"

    async def exchange(self, code: str, code_verifier: str, nonce: str) -> Tokens:
        """The code for tokens at the token endpoint; the ID token's claims checked."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_url,
            "code_verifier": code_verifier,
            "client_id": self.client_id,
        }
        headers = {"Accept": "application/json"}
        if self.client_secret:
            if "client_secret_basic" in metadata.token_auth_methods:
                # RFC 6749 2.3.1: each part form-encoded before Basic encoding.
                pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
                headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            else:
                form["client_secret"] = self.client_secret
        try:
            reply = await self.client.post(metadata.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as error:
            raise OidcLoginError(
                f"the OIDC token endpoint cannot be reached: {error}", status=502
            ) from None
        try:
            body = reply.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if reply.status_code != 200:
            said = _provider_said(body.get("error"), body.get("error_description"))
            raise OidcLoginError(
                f"the OIDC provider refused the authorization code ({reply.status_code}): {said}",
                status=400 if reply.status_code in (400, 401) else 502,
            )
        access_token, id_token = body.get("access_token"), body.get("id_token")
        if not isinstance(access_token, str) or not access_token:
            raise OidcLoginError("the OIDC provider's token reply has no access_token", status=502)
        if not isinstance(id_token, str) or not id_token:
            raise OidcLoginError(
                "the OIDC provider's token reply has no id_token (is 'openid' among the scopes?)",
                status=502,
            )
        claims = check_id_token(
            id_token, issuer=metadata.issuer, client_id=self.client_id, nonce=nonce
        )
        return Tokens(access_token, claims)


def _provider_said(error: object, description: object) -> str:
    text = str(error or "no error code")
    if description:
        text += f": {description}"
    return text[:500]


def provider_error(error: str, description: str | None) -> OidcLoginError:
    """The provider sent the browser back with `error=` (e.g. access_denied)."""
    return OidcLoginError(
        f"the OIDC provider refused the sign-in: {_provider_said(error, description)}"
    )


def check_id_token(
    id_token: str, *, issuer: str, client_id: str, nonce: str, now: float | None = None
) -> dict[str, Any]:
    """The ID token's claims, once iss, aud (and azp), nonce, exp and iat are as they must be
    (OpenID Connect Core 3.1.3.7). The signature is not checked: see the module's docstring."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        raise OidcLoginError("the ID token is not a JWT", status=502) from None
    if not isinstance(claims, dict):
        raise OidcLoginError("the ID token's payload is not a JSON object", status=502)
    now = time.time() if now is None else now
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    problems = []
    if str(claims.get("iss", "")).rstrip("/") != issuer.rstrip("/"):
        problems.append(f"issuer {claims.get('iss')!r} is not {issuer!r}")
    if client_id not in audiences:
        problems.append(f"audience {audience!r} does not include {client_id!r}")
    elif len(audiences) > 1 and claims.get("azp") != client_id:
        problems.append(f"authorized party {claims.get('azp')!r} is not {client_id!r}")
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
        claims["nonce"], nonce
    ):
        problems.append("nonce does not match this sign-in's")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or exp + CLOCK_SKEW_S < now:
        problems.append("it has expired (exp)")
    if isinstance(iat, int | float) and iat - CLOCK_SKEW_S > now:
        problems.append("it was issued in the future (iat)")
    if problems:
        raise OidcLoginError(f"the ID token is refused: {'; '.join(problems)}", status=400)
    return claims
