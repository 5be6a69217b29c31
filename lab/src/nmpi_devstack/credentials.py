"""The lab's generated secrets: made once at the first `up`, kept 0600 in the state directory.

Nothing here is ever written into the repository; `clean` removes it with the state directory.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
from dataclasses import asdict, dataclass, fields
from pathlib import Path

PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 24  # 24 characters of 62: 142 bits


def _password() -> str:
    # Letters and digits only: token_urlsafe's "-" and "_" made one password in 64 start with
    # "-", which keystone-manage's argument parser read as an option (CI failure, stop 20).
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Secrets:
    mariadb: str  # the services' database user (nmpilab)
    rabbitmq: str  # the services' broker user (nmpilab)
    admin: str  # Keystone admin (project admin)
    lab: str  # Keystone user lab (project lab, role member)
    service: str  # every service user (nova, neutron, ...) in project service
    rndc: str  # base64 HMAC-SHA256 key: designate-worker -> BIND9 (rndc addzone/delzone)

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            mariadb=_password(),
            rabbitmq=_password(),
            admin=_password(),
            lab=_password(),
            service=_password(),
            rndc=_key(),
        )


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, without a moment where it is readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def load_or_create(path: Path) -> Secrets:
    if path.exists():
        raw = json.loads(path.read_text())
        fresh = asdict(Secrets.generate())
        # a secret added by a newer version of the lab is generated, the others are kept
        merged = {f.name: raw.get(f.name) or fresh[f.name] for f in fields(Secrets)}
        result = Secrets(**merged)
        if merged != {k: raw.get(k) for k in merged}:
            write_private(path, json.dumps(asdict(result), indent=2) + "\n")
        return result
    result = Secrets.generate()
    write_private(path, json.dumps(asdict(result), indent=2) + "\n")
    return result
