"""Data items (inputs and outputs) as stored: plain dicts, unique by URL, safe to download.

The nmpi client's download_data() saves each output item at
`os.path.join(local_dir, item["path"])` and fetches `item["url"]` with urlretrieve: whatever a
provider puts there decides where a user's machine writes, and what it reads. Items that could
take either outside the download folder are refused when they are stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException, status

from .. import limits
from ..schemas.jobs import DataItem

# Names Windows opens as devices whatever the folder or extension ("nul.txt", "COM1.dat").
_WINDOWS_DEVICE = re.compile(r"(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)")
_SHOWN_CHARS = 80  # of a refused path, in the error message


def unsafe_path_reason(path: str) -> str | None:
    """Why a client could not save a file at `path` under its download folder, or None.

    The single rule for a data item's path (also for paths derived from URLs): relative,
    '/'-separated, every segment a plain file or folder name, on POSIX and Windows alike.
    """
    if not path:
        return "must not be empty"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in path):
        return "control characters (NUL, newline...) are not allowed"
    if "\\" in path:
        return "backslashes are not allowed (Windows clients read them as folder separators)"
    if ":" in path:
        return "colons are not allowed (on Windows: a drive letter such as C:, or a file stream)"
    if path.startswith("/"):
        return "must be relative to the download folder (it starts with '/')"
    if path.startswith("~"):
        return "must not start with '~' (a home folder once expanded)"
    for segment in path.split("/"):
        if not segment:
            return "empty segments are not allowed ('//', or a '/' at the end)"
        if not segment.strip(". "):
            return "'.' and '..' segments (or segments of only dots and spaces) are not allowed"
        if len(segment.encode()) > limits.PATH_SEGMENT_MAX_BYTES:
            return f"a segment may have at most {limits.PATH_SEGMENT_MAX_BYTES} bytes"
        if _WINDOWS_DEVICE.fullmatch(segment.split(".")[0].rstrip(" ").lower()):
            return f"'{segment}' names a device on Windows"
    return None


def unsafe_item_reason(item: DataItem) -> tuple[str, str] | None:
    """(field, why) for an item a client could not safely download, or None."""
    # urlretrieve also opens file: URLs: a client would copy a file of its own machine, and a
    # site fetching an input would read one of its own.
    if item.url.scheme.lower() == "file":
        return "url", "file: URLs are not allowed (they name a file on the reader's machine)"
    if item.path is not None:
        reason = unsafe_path_reason(item.path)
        if reason is not None:
            shown = item.path[:_SHOWN_CHARS] + ("..." if len(item.path) > _SHOWN_CHARS else "")
            return "path", f"{shown!r}: {reason}"
    return None


def refuse_unsafe(items: Sequence[DataItem], where: str) -> None:
    """400 naming each item of the list `where` of the body that unsafe_item_reason refuses."""
    problems = []
    for index, item in enumerate(items):
        found = unsafe_item_reason(item)
        if found is not None:
            field, reason = found
            problems.append(f"{where}[{index}].{field} {reason}")
    if problems:
        shown = "; ".join(problems[: limits.ERRORS_MAX])
        more = len(problems) - limits.ERRORS_MAX
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"unsafe data item(s): {shown}" + (f"; and {more} more" if more > 0 else ""),
        )


def to_db(item: DataItem) -> dict[str, Any]:
    return {
        "url": str(item.url),
        "path": item.path,
        "hash": item.hash,
        "size": item.size,
        "content_type": item.content_type,
    }


def merge(
    existing: list[dict[str, Any]] | None,
    new: Sequence[DataItem],
    where: str = "output_data.files",
) -> list[dict[str, Any]]:
    """Add or update items by URL, keeping order: repeating a PUT never duplicates an item.

    400 if a new item is unsafe or the job would have more than OUTPUT_ITEMS_MAX items."""
    refuse_unsafe(new, where)
    merged = {item["url"]: item for item in existing or []}
    for item in new:
        stored = to_db(item)
        previous = merged.get(stored["url"], {})
        merged[stored["url"]] = {
            key: stored[key] if stored[key] is not None else previous.get(key) for key in stored
        }
    if len(merged) > limits.OUTPUT_ITEMS_MAX and len(merged) > len(existing or []):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"{where}: a job has at most {limits.OUTPUT_ITEMS_MAX} output files "
            f"(this update would make {len(merged)}); publish an archive of them instead",
        )
    return list(merged.values())
