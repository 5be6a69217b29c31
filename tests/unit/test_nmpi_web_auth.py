"""roles/nmpi_common/filter_plugins/nmpi_web_auth.py: the monitoring UIs' password hashes."""

from __future__ import annotations

import secrets
import string

import bcrypt
import pytest

from roles.nmpi_common.filter_plugins.nmpi_web_auth import web_password_hash

# Made per run, as the deployments make theirs: nothing that looks like a secret is tracked.
PASSWORD = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def test_hash_checks_the_password_and_is_the_same_on_every_run() -> None:
    hashed = web_password_hash(PASSWORD)
    assert hashed.startswith("$2b$10$")
    assert bcrypt.checkpw(PASSWORD.encode(), hashed.encode())
    assert not bcrypt.checkpw(("wrong-" + secrets.token_hex(8)).encode(), hashed.encode())
    # Same input, same file: re-running the role changes nothing.
    assert web_password_hash(PASSWORD) == hashed
    # Different passwords get different salts too.
    other = web_password_hash(PASSWORD + "x")
    assert other[:29] != hashed[:29]
    assert web_password_hash(PASSWORD, cost=11).startswith("$2b$11$")


@pytest.mark.parametrize(
    ("password", "cost", "message"),
    [("short", 10, "at least 16 characters"), (PASSWORD, 4, "cost must be 10..14")],
)
def test_weak_input_is_refused_with_the_reason(password: str, cost: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        web_password_hash(password, cost)
