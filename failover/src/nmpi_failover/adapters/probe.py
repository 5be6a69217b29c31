"""HTTPS /readyz probes of a site (through its floating IP) or of one web VM, from here.

The probe takes the path a user takes: TLS verified against the site's CA with the public
server name as SNI and Host, even when the URL holds an IP address. Anything but a 200
within `timeout` (the whole exchange, not per socket operation) is a failed probe, and
the failure says why, because the journal and `status` show it to an operator. A probe
carries the HTTP status whenever a response came back (`SiteProbe.status_code`; None on a
connect error, timeout or TLS failure): a 503 means the web tier is there and waits for a
writable database, which `decide` treats differently from silence.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ..config import SiteConfig
from ..model import SiteProbe


class HttpsProber:
    """`ports.SiteProber` over httpx; a fresh connection per probe, so a pooled connection
    never hides a path that stopped accepting new ones."""

    def __init__(self, timeout: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._monotonic = monotonic
        self._contexts: dict[Path | None, ssl.SSLContext] = {}

    def _context(self, ca_file: Path | None) -> ssl.SSLContext:
        context = self._contexts.get(ca_file)
        if context is None:
            # None: the system store. Loaded once per CA file, not per probe.
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            self._contexts[ca_file] = context
        return context

    async def probe(self, site: SiteConfig, url: str | None = None) -> SiteProbe:
        target = url or site.probe_url
        headers: dict[str, str] = {}
        extensions: dict[str, str] = {}
        if site.server_name:
            port = urlsplit(target).port
            host = site.server_name if port in (None, 443) else f"{site.server_name}:{port}"
            headers["Host"] = host
            extensions["sni_hostname"] = site.server_name
        try:
            context = self._context(site.ca_file)
        except (OSError, ssl.SSLError) as exc:
            return SiteProbe(ok=False, error=f"cannot load CA file {site.ca_file}: {exc}")
        start = self._monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                async with httpx.AsyncClient(
                    verify=context,
                    timeout=self.timeout,
                    follow_redirects=False,
                    trust_env=False,  # never through a proxy from the environment
                ) as client:
                    response = await client.get(target, headers=headers, extensions=extensions)
        except TimeoutError:
            return SiteProbe(ok=False, error=f"timeout after {self.timeout:g} s")
        except httpx.TimeoutException:
            return SiteProbe(ok=False, error=f"timeout after {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return SiteProbe(ok=False, error=_describe(exc))
        latency = self._monotonic() - start
        if response.status_code != 200:
            reason = response.reason_phrase or ""
            return SiteProbe(
                ok=False,
                latency=latency,
                error=f"HTTP {response.status_code} {reason}".strip(),
                status_code=response.status_code,
            )
        return SiteProbe(ok=True, latency=latency, status_code=response.status_code)


def _describe(exc: httpx.HTTPError) -> str:
    """A one-line reason; TLS failures named as such, since they need a different fix."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted: {cause.verify_message or cause}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    kind = "connect" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
    return f"{kind}: {exc}" if str(exc) else kind
