"""Uploaded code archives (POST /code-archives/): formats, limits, who reads them, deletion.

Against the live server on real PostgreSQL; the collab's total limit is checked through the
domain function in-process (the server's limit is 1 GiB, too large to fill in a test).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import tarfile
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import Account, run_admin
from nmpi_job_queue import limits
from nmpi_job_queue.domain import code_archives
from nmpi_job_queue.web_sessions import COOKIE, CSRF_HEADER

RUN_PY = b"import pyNN.spiNNaker as sim\nprint('hello from the archive')\n"


def run_py() -> bytes:
    """A script unique to the call: each test's archives are its own (hashes do not collide)."""
    return RUN_PY + f"# {uuid.uuid4()}\n".encode()


def tar_bytes(files: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (files or {"run.py": run_py()}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("run.py", run_py())
    return buffer.getvalue()


ARCHIVES: dict[str, Callable[[], bytes]] = {
    "zip": zip_bytes,
    "tar": tar_bytes,
    "tar.gz": lambda: gzip.compress(tar_bytes()),
    "tar.bz2": lambda: bz2.compress(tar_bytes()),
    "tar.xz": lambda: lzma.compress(tar_bytes()),
}


def upload(
    client: httpx.Client, collab: str, data: bytes, filename: str = "code.tar.gz"
) -> httpx.Response:
    return client.post(
        "/code-archives/",
        params={"collab": collab, "filename": filename},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


@pytest.mark.parametrize("archive_format", list(ARCHIVES))
def test_each_format_is_recognised_from_its_bytes(
    archive_format: str, api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    user = new_user()
    data = ARCHIVES[archive_format]()
    # The name says .zip whatever the bytes are: the format comes from the bytes.
    reply = upload(api(token=user.token), user.collab, data, filename="misnamed.zip")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    digest = hashlib.sha256(data).hexdigest()
    assert body["format"] == archive_format
    assert body["sha256"] == digest
    assert body["size"] == len(data)
    assert body["path"] == f"/code-archives/{digest}.{archive_format}"
    assert (body["collab"], body["uploaded_by"], body["filename"]) == (
        user.collab,
        user.username,
        "misnamed.zip",
    )


def test_provider_and_members_read_it_others_do_not(
    api: Callable[..., httpx.Client],
    new_user: Callable[..., Account],
    new_provider: Callable[[list[str]], str],
) -> None:
    owner = new_user()
    viewer = new_user(roles={owner.collab: "viewer"})
    stranger = new_user()
    data = ARCHIVES["tar.gz"]()
    path = upload(api(token=owner.token), owner.collab, data, "my code ü.tar.gz").json()["path"]

    as_provider = api(api_key=new_provider(["SpiNNaker"])).get(path)
    assert as_provider.status_code == 200
    assert as_provider.content == data
    assert as_provider.headers["content-type"] == "application/gzip"
    assert as_provider.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert (
        "filename*=UTF-8''my%20code%20%C3%BC.tar.gz" in as_provider.headers["content-disposition"]
    )
    assert api(token=viewer.token).get(path).content == data
    # Absent and forbidden look the same: a stranger cannot learn which hashes are stored.
    hidden = api(token=stranger.token).get(path)
    assert hidden.status_code == 404
    missing = api(token=owner.token).get(path.replace(".tar.gz", ".zip"))
    assert missing.status_code == 404
    assert api().get(path).status_code == 401


def test_the_same_bytes_again_are_stored_once(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account], database_url: str
) -> None:
    user = new_user()
    client = api(token=user.token)
    data = ARCHIVES["zip"]()
    first = upload(client, user.collab, data, "a.zip")
    again = upload(client, user.collab, data, "b.zip")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()  # the first upload's record, its name included
    listed = client.get("/code-archives/", params={"collab": user.collab}).json()
    assert [a["sha256"] for a in listed] == [first.json()["sha256"]]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the upload is empty"),
        (b"print('not an archive')\n" * 40, "not a zip or tar archive"),
        (gzip.compress(b"plain text, no tar inside" * 40), "gzip-compressed but not of a tar"),
        (b"PK\x03\x04" + b"\x00" * 100, "damaged archive"),
        (gzip.compress(tar_bytes())[:30], "too short to hold a tar archive (truncated?)"),
    ],
    ids=["empty", "python", "gzip-not-tar", "broken-zip", "truncated-gzip"],
)
def test_what_is_not_an_archive_is_refused_with_the_reason(
    data: bytes,
    expected: str,
    api: Callable[..., httpx.Client],
    new_user: Callable[..., Account],
) -> None:
    user = new_user()
    reply = upload(api(token=user.token), user.collab, data)
    assert reply.status_code == 415, reply.text
    assert expected in reply.json()["detail"]


def test_only_editors_upload_and_names_are_checked(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    owner = new_user()
    viewer = new_user(roles={owner.collab: "viewer"})
    refused = upload(api(token=viewer.token), owner.collab, ARCHIVES["tar"]())
    assert refused.status_code == 403
    assert f"editors of collab '{owner.collab}'" in refused.json()["detail"]
    folder = upload(api(token=owner.token), owner.collab, ARCHIVES["tar"](), "../etc/x.tar")
    assert folder.status_code == 422
    assert "no folders" in folder.json()["detail"]
    missing = api(token=owner.token).post(
        "/code-archives/", params={"collab": owner.collab}, content=ARCHIVES["tar"]()
    )
    assert missing.status_code == 422
    assert "filename" in missing.json()["detail"]


def test_an_archive_over_the_limit_is_refused_before_it_is_read(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    user = new_user()
    data = b"\x1f\x8b" + b"\x00" * limits.CODE_ARCHIVE_MAX_BYTES  # one byte over
    reply = upload(api(token=user.token), user.collab, data)
    assert reply.status_code == 413
    assert f"at most {limits.CODE_ARCHIVE_MAX_BYTES} bytes (16 MiB)" in reply.json()["detail"]
    # The other routes keep their 4 MiB: the allowance is the upload's alone.
    other = api(token=user.token).post(
        "/jobs/",
        content=b"{" + b" " * limits.MAX_BODY_BYTES + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert other.status_code == 413


def test_a_collab_full_of_archives_is_told_so(
    database_url: str, new_user: Callable[..., Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = new_user()
    first, second = ARCHIVES["tar"](), ARCHIVES["tar.gz"]()
    monkeypatch.setattr(limits, "CODE_ARCHIVES_MAX_BYTES_PER_COLLAB", len(first) + 10)

    async def store(session: Any, data: bytes) -> str:
        stored = await code_archives.store(session, user.collab, user.username, "x.tar", data)
        return stored.archive.sha256

    run_admin(database_url, lambda s: store(s, first))
    with pytest.raises(code_archives.CollabFullError, match=f"collab '{user.collab}' stores"):
        run_admin(database_url, lambda s: store(s, second))
    # The same bytes again cost nothing, so they are not refused.
    assert run_admin(database_url, lambda s: store(s, first)) == hashlib.sha256(first).hexdigest()


def test_delete_removes_it_for_everyone(
    api: Callable[..., httpx.Client],
    new_user: Callable[..., Account],
    new_provider: Callable[[list[str]], str],
) -> None:
    owner = new_user()
    viewer = new_user(roles={owner.collab: "viewer"})
    client = api(token=owner.token)
    path = upload(client, owner.collab, ARCHIVES["tar.xz"]()).json()["path"]
    name = path.rsplit("/", 1)[1]
    assert api(token=viewer.token).delete(path, params={"collab": owner.collab}).status_code == 403
    assert client.delete(path, params={"collab": owner.collab}).status_code == 204
    assert client.delete(path, params={"collab": owner.collab}).status_code == 404
    assert api(api_key=new_provider(["SpiNNaker"])).get(path).status_code == 404
    assert client.get("/code-archives/", params={"collab": owner.collab}).json() == []
    assert name.endswith(".tar.xz")


def test_the_web_app_uploads_with_its_cookie_and_the_csrf_header(
    server: str, api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    user = new_user()
    signed_in = httpx.post(
        f"{server}/auth/session", json={"token": user.token}, headers={CSRF_HEADER: "1"}
    )
    assert signed_in.status_code == 200
    cookie = {"Cookie": f"{COOKIE}={signed_in.cookies[COOKIE]}"}
    with httpx.Client(base_url=server, headers=cookie, timeout=30) as browser:
        assert upload(browser, user.collab, ARCHIVES["zip"]()).status_code == 403  # no header
        browser.headers[CSRF_HEADER] = "1"
        reply = upload(browser, user.collab, ARCHIVES["zip"]())
        assert reply.status_code == 201
        # A job can name it: its code is the archive's URL at this deployment.
        job = browser.post(
            "/jobs/",
            json={
                "code": f"{server}{reply.json()['path']}",
                "collab": user.collab,
                "hardware_platform": "SpiNNaker",
            },
        )
        assert job.status_code == 201, job.text
