"""Paged lists: page sizes, the cursor parameters and the `Link: rel="next"` header.

The nmpi client never pages (it reads one reply), so a list's default page must hold all that
the client asks for; a hard maximum bounds what one request may cost. A reply that stops short
of the end says so with `Link: <...>; rel="next"` (RFC 8288), the URL of the next page: the same
query with a cursor (`before_id`: keyset paging, as fast at any depth) for lists ordered by id,
or the next `from_index` for the few that are not. There is no total count: counting a large
collab's jobs costs as much as listing them. See docs/lists-and-paging.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Query, Request, Response

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
CURSORS = ("from_index", "before_id")

PageSize = Annotated[
    int,
    Query(
        ge=1,
        le=100_000,
        description=f"items per page (default {DEFAULT_PAGE_SIZE}); more than {MAX_PAGE_SIZE} "
        f'are served as {MAX_PAGE_SIZE}, and a `Link: <...>; rel="next"` header is sent '
        "whenever more items follow",
    ),
]
FromIndex = Annotated[
    int,
    Query(
        ge=0,
        le=10_000_000,
        description="items to skip (offset paging, as the reference service; prefer the "
        "`Link` header's URL, which is as fast at any depth)",
    ),
]
BeforeId = Annotated[
    int | None,
    Query(
        ge=1,
        le=2**63 - 1,
        description="only items with a smaller id (keyset paging: the cursor the `Link` "
        "header's next URL carries)",
    ),
]

# Declared on the 200 of every paged list (those with a from_index parameter) by openapi.py.
LINK_HEADER: dict[str, Any] = {
    "description": 'URL of the next page (`<...>; rel="next"`), sent when more items follow',
    "schema": {"type": "string"},
}


def page_size(size: int) -> int:
    return min(size, MAX_PAGE_SIZE)


def link_next(request: Request, response: Response, **cursor: int) -> None:
    """Set `Link: <the same query, with `cursor` instead of any cursor sent>; rel="next"`.

    A path-absolute reference (RFC 8288 resolves it against the request's URL): right behind
    any proxy, which an absolute URL built from the Host header is not.
    """
    kept: Sequence[tuple[str, str]] = [
        (name, value) for name, value in request.query_params.multi_items() if name not in CURSORS
    ]
    query = urlencode([*kept, *((name, str(value)) for name, value in cursor.items())])
    response.headers["Link"] = f'<{quote(request.url.path)}?{query}>; rel="next"'
