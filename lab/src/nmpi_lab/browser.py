"""A real browser on the deployed lab: Debian's Chromium, headless, driven by Playwright.

The lab's names live in its own DNS zone and its certificates come from its own CA, neither of
which Chromium knows. Rather than turn certificate checks off, each server's certificate is
first verified here against the lab CA, and Chromium is then told to trust exactly that key
(`--ignore-certificate-errors-spki-list`) and where the public name points
(`--host-resolver-rules`). Used by the Job Manager's browser tests and its benchmark.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from nmpi_lab import deployment

CHROMIUM = "/usr/bin/chromium"  # Debian's package: Playwright's own downloads are unreachable
APP_PATH = "/app/"  # roles/platform: platform_job_manager_path


def spki_pin(host: str, port: int, ca_file: Path, server_name: str | None = None) -> str:
    """base64 SHA-256 of the public key the server presents, once its certificate verified
    against the lab CA for `server_name` (default: host)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name or host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise RuntimeError(f"{host}:{port} presented no certificate")
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def chromium_args(lab: deployment.Deployment) -> list[str]:
    """Chromium's switches for the lab: the public name resolved as the lab's DNS answers now,
    and the keys of the web VMs and the hardware sites' output servers trusted."""
    address = lab.resolve()[0]
    pins = {spki_pin(address, 443, lab.ca_file, lab.public_name)}
    for host in lab.hardware_sites:
        pins.add(spki_pin(host.public_ip, deployment.EMULATOR_OUTPUTS_PORT, lab.ca_file))
    return [
        "--no-sandbox",  # root in CI: Chromium's own sandbox refuses to run as root
        "--disable-gpu",
        f"--host-resolver-rules=MAP {lab.public_name} {address}",
        f"--ignore-certificate-errors-spki-list={','.join(sorted(pins))}",
    ]


@contextmanager
def chromium(lab: deployment.Deployment) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(lab))
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser: Browser, width: int = 1400, height: int = 900) -> BrowserContext:
    return browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")


def sign_in(page: Page, lab: deployment.Deployment, token: str | None = None) -> None:
    """The Job Manager's token sign-in (identity mode `local`), as a user types it."""
    page.goto(lab.url + APP_PATH)
    page.get_by_label("API token").fill(token or lab.demo_token())
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for(timeout=30_000)
