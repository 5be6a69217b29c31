"""The HTTPS probe against a local HTTPS server with a test CA."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from failover_services import (
    SERVER_NAME,
    HttpsSite,
    LoopbackCa,
    free_port,
    loopback_ca,  # noqa: F401 - fixture
    make_ca,
)
from nmpi_failover.adapters.probe import HttpsProber
from nmpi_failover.config import SiteConfig


@pytest.fixture
def https(loopback_ca: LoopbackCa) -> Iterator[HttpsSite]:  # noqa: F811
    server = HttpsSite(loopback_ca)
    try:
        yield server
    finally:
        server.close()


def site(url: str, ca_file: Path | None, **overrides: Any) -> SiteConfig:
    data: dict[str, Any] = {
        "name": "castor",
        "probe_url": url,
        "address": "192.0.2.10",
        "server_name": SERVER_NAME,
        "ca_file": str(ca_file) if ca_file else None,
        "patroni_urls": ["http://127.0.0.1:1"],
        "db_members": ["castor-db-1"],
    }
    data.update(overrides)
    return SiteConfig.model_validate(data)


def probe(config: SiteConfig, timeout: float = 1.0, url: str | None = None) -> Any:
    return asyncio.run(HttpsProber(timeout).probe(config, url))


def test_a_good_certificate_and_200_is_up(https: HttpsSite, loopback_ca: LoopbackCa) -> None:  # noqa: F811
    result = probe(site(https.url, loopback_ca.ca_file))
    assert result.ok, result.error
    assert result.error is None
    assert result.status_code == 200
    assert result.latency is not None
    assert 0 < result.latency < 1
    # The public name, not the IP in the URL, is what the server is asked for.
    assert https.requests[-1] == {"path": "/readyz", "host": f"{SERVER_NAME}:{https.port}"}


def test_a_certificate_from_another_ca_fails(https: HttpsSite, tmp_path: Path) -> None:
    other = make_ca(tmp_path / "other", name="other-ca")
    result = probe(site(https.url, other.ca_file))
    assert not result.ok
    assert result.error.startswith("TLS certificate not trusted")
    assert result.status_code is None  # no answer: the web tier's own, at least
    assert https.requests == []  # no request was sent over the untrusted connection


def test_a_certificate_for_another_name_fails(https: HttpsSite, loopback_ca: LoopbackCa) -> None:  # noqa: F811
    result = probe(site(https.url, loopback_ca.ca_file, server_name="www.example.org"))
    assert not result.ok
    assert "TLS" in result.error
    assert "www.example.org" in result.error


def test_a_slow_answer_is_a_timeout(https: HttpsSite, loopback_ca: LoopbackCa) -> None:  # noqa: F811
    https.delay = 2.0
    start = time.monotonic()
    result = probe(site(https.url, loopback_ca.ca_file), timeout=0.3)
    assert time.monotonic() - start < 1.0
    assert not result.ok
    assert result.error == "timeout after 0.3 s"
    assert result.latency is None
    assert result.status_code is None


def test_503_fails_with_the_status(https: HttpsSite, loopback_ca: LoopbackCa) -> None:  # noqa: F811
    https.status = 503
    result = probe(site(https.url, loopback_ca.ca_file))
    assert not result.ok
    assert result.error == "HTTP 503 Service Unavailable"
    assert result.latency is not None  # there was an answer
    assert result.status_code == 503  # the web tier is there, its database is not writable
    assert result.answered


def test_any_status_but_200_fails(https: HttpsSite, loopback_ca: LoopbackCa) -> None:  # noqa: F811
    https.status = 204
    assert probe(site(https.url, loopback_ca.ca_file)).error == "HTTP 204 No Content"


def test_a_refused_connection_fails(loopback_ca: LoopbackCa) -> None:  # noqa: F811
    result = probe(site(f"https://127.0.0.1:{free_port()}/readyz", loopback_ca.ca_file))
    assert not result.ok
    assert result.error.startswith("connect")
    assert result.status_code is None
    assert not result.answered


def test_a_web_vm_url_overrides_the_site_url(https: HttpsSite, loopback_ca: LoopbackCa) -> None:  # noqa: F811
    config = site(f"https://127.0.0.1:{free_port()}/readyz", loopback_ca.ca_file)
    result = probe(config, url=https.url.replace("/readyz", "/vm-readyz"))
    assert result.ok, result.error
    assert https.requests[-1]["path"] == "/vm-readyz"
