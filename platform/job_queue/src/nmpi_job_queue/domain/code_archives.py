"""Uploaded archives of jobs' code: what an upload is (format, name), storage and visibility.

An archive is stored per (collab, SHA-256). Its URL names only the hash and the format
(`/code-archives/<sha256>.<format>`): that is what a job's `code` holds, and what a hardware site
downloads with its provider key. A user reads it through any collab they may view that holds it.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import re
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from .. import limits, models
from ..identity import Provider, User, public_collabs

FORMATS = ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz")
MEDIA_TYPES = {
    "zip": "application/zip",
    "tar": "application/x-tar",
    "tar.gz": "application/gzip",
    "tar.bz2": "application/x-bzip2",
    "tar.xz": "application/x-xz",
}
NAME_PATTERN = r"^[0-9a-f]{64}\.(zip|tar|tar\.gz|tar\.bz2|tar\.xz)$"
_NAME = re.compile(NAME_PATTERN)
_TAR_HEADER = 512
_TAR_MAGIC = slice(257, 262)  # "ustar", POSIX and GNU tar alike


class ArchiveRefusedError(ValueError):
    """The upload is not an archive this deployment accepts; the message says why."""


@dataclass(frozen=True)
class Stored:
    archive: models.CodeArchive
    created: bool


def path_of(sha256: str, archive_format: str) -> str:
    return f"/code-archives/{sha256}.{archive_format}"


def parse_name(name: str) -> tuple[str, str] | None:
    """`<sha256>.<format>` into its hash and format; None if it is not such a name."""
    if not _NAME.fullmatch(name):
        return None
    sha256, _, archive_format = name.partition(".")
    return sha256, archive_format


def check_filename(filename: str) -> str:
    """The name the user's file had: shown and offered back on download, never a path here."""
    name = unicodedata.normalize("NFC", filename).strip()
    if not name:
        raise ArchiveRefusedError("filename is empty: give the archive's file name")
    if len(name) > limits.CODE_ARCHIVE_FILENAME_MAX_CHARS:
        raise ArchiveRefusedError(
            f"filename has {len(name)} characters; at most {limits.CODE_ARCHIVE_FILENAME_MAX_CHARS}"
        )
    if any(unicodedata.category(c)[0] == "C" or c in "/\\" for c in name):
        raise ArchiveRefusedError(
            "filename must be a file's name: no folders, no control characters"
        )
    return name


def _tar_inside(head: bytes, what: str) -> None:
    if len(head) < _TAR_HEADER:
        raise ArchiveRefusedError(
            f"the upload is {what} but too short to hold a tar archive (truncated?)"
        )
    if head[_TAR_MAGIC] != b"ustar":
        raise ArchiveRefusedError(f"the upload is {what} but not of a tar archive")


def detect_format(data: bytes) -> str:
    """The archive's format from its bytes (never from its name): one of FORMATS."""
    if not data:
        raise ArchiveRefusedError("the upload is empty")
    try:
        if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                archive.infolist()  # the central directory must be readable
            return "zip"
        if data[:2] == b"\x1f\x8b":
            gunzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            _tar_inside(gunzip.decompress(data[: 1 << 16], _TAR_HEADER), "gzip-compressed")
            return "tar.gz"
        if data[:3] == b"BZh":
            _tar_inside(
                bz2.BZ2Decompressor().decompress(data[: 1 << 20], _TAR_HEADER), "bzip2-compressed"
            )
            return "tar.bz2"
        if data[:6] == b"\xfd7zXZ\x00":
            _tar_inside(
                lzma.LZMADecompressor().decompress(data[: 1 << 20], _TAR_HEADER), "xz-compressed"
            )
            return "tar.xz"
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, lzma.LZMAError) as error:
        raise ArchiveRefusedError(f"the upload is a damaged archive: {error}") from None
    if data[_TAR_MAGIC] == b"ustar":
        return "tar"
    raise ArchiveRefusedError(
        "the upload is not a zip or tar archive (tar may be compressed with gzip, bzip2 or xz)"
    )


async def stored_bytes(session: AsyncSession, collab: str) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(models.CodeArchive.size), 0)).where(
            models.CodeArchive.collab == collab
        )
    )
    return int(total or 0)


class CollabFullError(Exception):
    """The collab's archives would take more than CODE_ARCHIVES_MAX_BYTES_PER_COLLAB."""


async def store(
    session: AsyncSession, collab: str, user: str, filename: str, data: bytes
) -> Stored:
    """Store `data` for `collab` (idempotent by content); the caller commits."""
    archive_format = detect_format(data)
    sha256 = hashlib.sha256(data).hexdigest()
    # One upload at a time per collab, so that two cannot both pass the total's check.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"code-archives:{collab}"},
    )
    # Its metadata only: the answer never carries the bytes, which may be 16 MiB.
    existing = await session.get(
        models.CodeArchive, (collab, sha256), options=[defer(models.CodeArchive.content)]
    )
    if existing is not None:
        return Stored(existing, created=False)
    total = await stored_bytes(session, collab)
    if total + len(data) > limits.CODE_ARCHIVES_MAX_BYTES_PER_COLLAB:
        raise CollabFullError(
            f"collab '{collab}' stores {total} bytes of code archives; with this one "
            f"({len(data)} bytes) it would pass its limit of "
            f"{limits.CODE_ARCHIVES_MAX_BYTES_PER_COLLAB} bytes: delete archives it no longer "
            "needs (DELETE /code-archives/<name>?collab=...)"
        )
    # A plain insert: the collab's lock is held and the row was absent. The time is set here so
    # that the answer needs no read of the row (and its bytes) back.
    archive = models.CodeArchive(
        collab=collab,
        sha256=sha256,
        format=archive_format,
        size=len(data),
        filename=filename,
        uploaded_by=user,
        uploaded=datetime.now(UTC),
        content=data,
    )
    session.add(archive)
    await session.flush()
    return Stored(archive, created=True)


async def find_readable(
    session: AsyncSession, caller: User | Provider, sha256: str, archive_format: str
) -> models.CodeArchive | None:
    """The stored archive `caller` may read, or None (absent and forbidden look the same).

    Providers read every archive: a job's code may name any of them, and the hardware sites
    are trusted with the jobs themselves. A user reads those of collabs they may view.
    """
    rows = (
        await session.scalars(
            select(models.CodeArchive.collab).where(
                models.CodeArchive.sha256 == sha256, models.CodeArchive.format == archive_format
            )
        )
    ).all()
    if isinstance(caller, User):
        hidden = [c for c in rows if not caller.can_view(c)]
        public = await public_collabs(session, hidden) if hidden else set()
        rows = [c for c in rows if caller.can_view(c, c in public)]
    if not rows:
        return None
    return await session.get(models.CodeArchive, (rows[0], sha256))


async def list_for(session: AsyncSession, collab: str) -> list[models.CodeArchive]:
    """A collab's archives, newest first, without their bytes."""
    result = await session.execute(
        select(models.CodeArchive)
        .options(defer(models.CodeArchive.content))
        .where(models.CodeArchive.collab == collab)
        .order_by(models.CodeArchive.uploaded.desc(), models.CodeArchive.sha256)
    )
    return list(result.scalars())


async def delete(session: AsyncSession, collab: str, sha256: str, archive_format: str) -> bool:
    """Remove a collab's archive; False if it has none by that name. The caller commits."""
    removed = await session.scalar(
        sql_delete(models.CodeArchive)
        .where(
            models.CodeArchive.collab == collab,
            models.CodeArchive.sha256 == sha256,
            models.CodeArchive.format == archive_format,
        )
        .returning(models.CodeArchive.sha256)
    )
    return removed is not None
