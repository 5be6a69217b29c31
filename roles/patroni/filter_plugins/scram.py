"""Jinja filter: does a PostgreSQL SCRAM-SHA-256 verifier (pg_authid.rolpassword) match a password?

    {{ verifier | nmpi_scram_matches(password) }}

Lets the patroni role keep role passwords in line with the inventory without logging in as
each role (pg_hba would refuse most of them locally) and without changing anything when they
already match: the verifier's salt and iteration count give the StoredKey and ServerKey the
password would have (RFC 5802, RFC 7677), compared in constant time. PostgreSQL applies
SASLprep to the password first; for printable ASCII (what the role's precheck allows) that is
the password itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any

_VERIFIER = re.compile(r"^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$")


def nmpi_scram_matches(verifier: Any, password: Any) -> bool:
    """True when `verifier` is a SCRAM-SHA-256 verifier of `password`; False otherwise."""
    match = _VERIFIER.match(str(verifier or ""))
    if match is None:
        return False  # no password, md5, or something else: not what the role sets
    try:
        iterations = int(match[1])
        salt = base64.b64decode(match[2], validate=True)
        stored_key = base64.b64decode(match[3], validate=True)
        server_key = base64.b64decode(match[4], validate=True)
    except (ValueError, binascii.Error):
        return False
    salted = hashlib.pbkdf2_hmac("sha256", str(password).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    expected_stored = hashlib.sha256(client_key).digest()
    expected_server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hmac.compare_digest(expected_stored, stored_key) and hmac.compare_digest(
        expected_server, server_key
    )


class FilterModule:
    """Ansible's entry point for the filters of this file."""

    def filters(self) -> dict[str, Callable[..., bool]]:
        return {"nmpi_scram_matches": nmpi_scram_matches}
