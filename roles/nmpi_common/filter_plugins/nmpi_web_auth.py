"""nmpi_web_password_hash (role nmpi_common, so that every play that runs a role using it has
it, molecule scenarios too): the bcrypt hash of a monitoring UI's password, for the web config
of Prometheus and Alertmanager (basic_auth_users). Tested in tests/unit/test_nmpi_web_auth.py.

ansible's own password_hash needs passlib, which is unmaintained and breaks with bcrypt 4.1+;
and a random salt would change the file, and restart the service, on every run.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import bcrypt

# bcrypt writes its salt in its own base64 alphabet.
_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
MIN_PASSWORD_LENGTH = 16
COSTS = range(10, 15)


def web_password_hash(password: str, cost: int = 10) -> str:
    """bcrypt of `password` with a salt derived from it: the same hash on every run.

    The passwords are long random strings made for this one use (generated at deploy time or
    kept in ansible-vault), so a derived salt costs nothing a random one would protect.
    """
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"nmpi_web_password_hash: the password must be a string of at least "
            f"{MIN_PASSWORD_LENGTH} characters"
        )
    if int(cost) not in COSTS:
        raise ValueError(f"nmpi_web_password_hash: cost must be 10..14, got {cost}")
    digest = hashlib.sha256(b"nmpi-web-config-salt:" + password.encode()).digest()[:16]
    encoded = base64.b64encode(digest).decode().rstrip("=").translate(str.maketrans(_STD, _BCRYPT))
    # 16 bytes are 22 characters; bcrypt keeps only the top 2 bits of the last one.
    last = _BCRYPT[_BCRYPT.index(encoded[21]) & 0x30]
    salt = f"$2b${int(cost):02d}${encoded[:21]}{last}"
    return bcrypt.hashpw(password.encode(), salt.encode()).decode()


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"nmpi_web_password_hash": web_password_hash}
