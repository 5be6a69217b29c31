"""The admin CLI end to end: what it creates works against the live server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx


def cli(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NMPI_")}
    env["NMPI_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "nmpi_job_queue.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(database_url: str, *args: str) -> str:
    result = cli(database_url, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_users_tokens_and_provider_keys(
    database_url: str, api: Callable[..., httpx.Client]
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    collab = f"cli-collab-{uuid.uuid4().hex[:8]}"
    ok(database_url, "user", "add", name, "--name", "Ada Lovelace", "--email", "ada@example.org")
    ok(database_url, "member", "add", name, collab, "--role", "editor")
    token = ok(database_url, "token", "create", name, "--days", "1")
    user = api(token)
    info = user.get("/userinfo").json()
    assert info["name"] == "Ada Lovelace"
    assert f"collab-{collab}-editor" in info["roles"]["team"]
    job = {"code": "print(1)", "collab": collab, "hardware_platform": "BrainScaleS-2"}
    created = user.post("/jobs/", json=job)
    assert created.status_code == 201

    key = ok(database_url, "provider-key", "create", "heidelberg", "--platform", "BrainScaleS-2")
    provider = api(api_key=key)
    assert provider.get("/jobs/next/SpiNNaker").status_code == 403
    assert provider.get(f"/jobs/{created.json()['id']}").status_code == 200

    revoked = ok(database_url, "token", "revoke", name)
    assert revoked.startswith("1 token(s)")


def test_registered_provider_key_is_idempotent(
    database_url: str, api: Callable[..., httpx.Client], tmp_path: Path
) -> None:
    """A deployment registers the key it keeps in its secrets at every run: the first run
    registers it, later ones change nothing, a new platform list updates it."""
    name = f"site-{uuid.uuid4().hex[:8]}"
    key = uuid.uuid4().hex + uuid.uuid4().hex
    register = ("provider-key", "register", name, "--platform", "SpiNNaker")
    assert cli(database_url, *register, stdin=key + "\n").stdout.startswith("registered:")
    assert cli(database_url, *register, stdin=key).stdout.startswith("unchanged:")
    provider = api(api_key=key)
    assert provider.get("/jobs/next/BrainScaleS-2").status_code == 403
    both = (*register, "--platform", "BrainScaleS-2")
    assert cli(database_url, *both, stdin=key).stdout.startswith("updated:")
    assert provider.get("/jobs/next/BrainScaleS-2").status_code in (200, 404)

    short = cli(database_url, *register, stdin="too-short")
    assert short.returncode == 1
    assert "32 to 200 printable characters; got 9" in short.stderr
    taken = cli(database_url, "provider-key", "register", "other", "--platform", "SpiNNaker",
                stdin=key)  # fmt: skip
    assert taken.returncode == 1
    assert f"already registered to provider '{name}'" in taken.stderr
    assert cli(database_url, *register).returncode == 2
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    from_file = cli(database_url, *both, "--key-file", str(key_file))
    assert from_file.stdout.startswith("unchanged:"), from_file.stderr
    missing = cli(database_url, *both, "--key-file", str(tmp_path / "none"))
    assert missing.returncode == 2
    assert "cannot read --key-file" in missing.stderr


def test_projects_quotas_and_maintenance(database_url: str) -> None:
    collab = f"cli-collab-{uuid.uuid4().hex[:8]}"
    project = ok(database_url, "project", "create", collab, "--owner", "ada", "--title", "Big run")
    assert uuid.UUID(project)
    quota = ok(database_url, "quota", "add", project, "--platform", "SpiNNaker", "--limit", "500")
    assert int(quota) > 0
    wrong = cli(database_url, "quota", "add", project, "--platform", "SpiNNaker", "--limit", "5",
                "--units", "hours")  # fmt: skip
    assert wrong.returncode == 1
    assert "SpiNNaker usage is counted in core-hours, not hours" in wrong.stderr
    try:
        assert ok(database_url, "maintenance", "set", "read-only", "--message", "upgrade") == (
            "read-only: upgrade"
        )
        assert ok(database_url, "maintenance", "show") == "read-only: upgrade"
    finally:
        ok(database_url, "maintenance", "set", "ok")


def test_clear_errors(database_url: str) -> None:
    missing = cli(database_url, "member", "add", "nobody-here", "some-collab")
    assert missing.returncode == 1
    assert "no user 'nobody-here': add it first" in missing.stderr
    usage = cli(database_url, "provider-key", "create", "x", "--platform", "Loihi")
    assert usage.returncode == 2
    assert "invalid choice: 'Loihi'" in usage.stderr


def test_help_teaches() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nmpi_job_queue.cli", "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    for command in ("serve", "migrate", "token", "provider-key", "maintenance"):
        assert command in result.stdout
    assert "examples:" in result.stdout
