"""Archives of jobs' code uploaded by users, downloaded by the hardware sites by hash.

The nmpi client and the Job Manager submit code inline, as a git URL or as an archive URL; this
is where the web app's upload goes. The job's `code` is then the archive's URL here, which the
hardware sites fetch with their provider key (docs/code-archives.md).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from .. import limits
from ..dependencies import Caller, CurrentUser, DbSession
from ..domain import code_archives as domain
from ..models import CodeArchive as ArchiveRow
from ..openapi import error_response
from ..schemas.code_archives import CodeArchive

router = APIRouter(tags=["code archives"])

CollabQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=limits.COLLAB_MAX_CHARS,
        description="the collab the archive is for (its members may read it)",
    ),
]
ArchiveName = Annotated[
    str,
    Path(
        pattern=domain.NAME_PATTERN,
        max_length=80,
        description="`<sha256>.<format>`, as in the `path` an upload answered",
    ),
]
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "the archive's bytes: zip, or tar (plain, gzip, bzip2 or xz), "
        f"at most {limits.CODE_ARCHIVE_MAX_BYTES} bytes",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _schema(row: ArchiveRow) -> CodeArchive:
    return CodeArchive(
        sha256=row.sha256,
        size=row.size,
        format=row.format,  # checked by detect_format on the way in
        filename=row.filename,
        collab=row.collab,
        uploaded_by=row.uploaded_by,
        uploaded=row.uploaded,
        path=domain.path_of(row.sha256, row.format),
    )


def _require_editor(user: CurrentUser, collab: str) -> None:
    if not user.can_edit(collab):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"only editors of collab '{collab}' may upload or delete its code archives",
        )


@router.post(
    "/code-archives/",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
    responses={
        200: {
            "description": "The same bytes were stored for this collab already",
            "model": CodeArchive,
        },
        415: error_response("Not a zip or tar archive (tar: plain, gzip, bzip2 or xz)"),
        422: error_response("A refused query parameter (filename, collab)"),
        507: error_response("The collab's stored archives would pass their total limit"),
    },
)
async def upload(
    request: Request,
    response: Response,
    session: DbSession,
    user: CurrentUser,
    collab: CollabQuery,
    filename: Annotated[
        str,
        Query(
            min_length=1,
            max_length=limits.CODE_ARCHIVE_FILENAME_MAX_CHARS,
            description="the file's name, shown and offered back on download",
        ),
    ],
) -> CodeArchive:
    """Store an archive of a job's code for a collab; its `path` goes in the job's `code`.

    The body is the archive itself (not a form). Uploading the same bytes again is harmless:
    200 with the stored archive."""
    _require_editor(user, collab)
    try:
        name = domain.check_filename(filename)
    except domain.ArchiveRefusedError as refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(refused)) from None
    data = await request.body()  # bounded by RequestLimitMiddleware (limits.max_body_bytes)
    try:
        stored = await domain.store(session, collab, user.username, name, data)
    except domain.ArchiveRefusedError as refused:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail=str(refused)) from None
    except domain.CollabFullError as full:
        raise HTTPException(status.HTTP_507_INSUFFICIENT_STORAGE, detail=str(full)) from None
    result = _schema(stored.archive)
    await session.commit()
    if not stored.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("/code-archives/")
async def list_archives(
    session: DbSession, user: CurrentUser, collab: CollabQuery
) -> list[CodeArchive]:
    """A collab's stored archives (newest first), to its members."""
    if not user.can_view(collab):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"you may not view the code archives of collab '{collab}'",
        )
    return [_schema(row) for row in await domain.list_for(session, collab)]


@router.get(
    "/code-archives/{name}",
    response_class=Response,
    responses={
        200: {
            "description": "The archive's bytes",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in sorted(set(domain.MEDIA_TYPES.values()))
            },
        }
    },
)
async def download(name: ArchiveName, session: DbSession, caller: Caller) -> Response:
    """An archive's bytes: to the hardware sites (provider key), and to members of a collab
    that stored it. The content never changes under its name (its hash)."""
    parsed = domain.parse_name(name)
    row = await domain.find_readable(session, caller, *parsed) if parsed else None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no code archive {name}")
    # RFC 6266: an ASCII fallback, and the user's own name encoded for those that read it.
    quoted = quote(row.filename, safe="")
    return Response(
        content=row.content,
        media_type=domain.MEDIA_TYPES[row.format],
        headers={
            "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quoted}",
            "ETag": f'"{row.sha256}"',
            "Cache-Control": "private, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.delete("/code-archives/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(
    name: ArchiveName, session: DbSession, user: CurrentUser, collab: CollabQuery
) -> Response:
    """Remove a collab's archive (editors). Jobs whose code names it and have not started
    will end in error at the site, saying the archive is not stored."""
    _require_editor(user, collab)
    parsed = domain.parse_name(name)
    if parsed is None or not await domain.delete(session, collab, *parsed):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"collab '{collab}' has no code archive {name}"
        )
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
