"""Local paths for output files that a hardware site published by URL only."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from .. import limits
from .data_items import unsafe_path_reason

# Control characters (C0, DEL, C1), and what Windows refuses in a file name (a ':' would also
# make the path drive-relative there).
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f:*?"<>|]')


def _segment(raw: str) -> str | None:
    """`raw` as one safe file or folder name (unsafe_path_reason's rule), None to leave out."""
    if not raw.strip(". "):
        return None  # '', '.', '..', '. .': would climb out of the folder or vanish on Windows
    name = _UNSAFE.sub("_", raw)
    # Cut to the file systems' name limit on a character boundary.
    name = name.encode()[: limits.PATH_SEGMENT_MAX_BYTES - 1].decode(errors="ignore")
    if unsafe_path_reason(name) is not None:
        name = "_" + name  # a Windows device name (CON, NUL.txt) or a leading '~'
    return name if unsafe_path_reason(name) is None else None


def path_from_url(url: str) -> str:
    """A relative path for the file at `url`, for output items that came without one.

    The nmpi client's download_data() saves each item at `os.path.join(local_dir, path)`: the
    path must stay inside local_dir. It is the URL's path, percent-decoded, split at '/' and
    '\\', each segment made a safe name (data_items.unsafe_path_reason is the rule); the last
    segments that fit the path limit are kept (the file name matters most), and the host when
    nothing remains. The reference service derives it from the URL too, but may give an
    absolute path.
    """
    parts = urlsplit(url)
    found = (_segment(s) for s in unquote(parts.path).replace("\\", "/").split("/"))
    segments = [s for s in found if s]
    kept: list[str] = []
    for segment in reversed(segments):
        if len("/".join([segment, *kept])) > limits.PATH_MAX_CHARS:
            break
        kept.insert(0, segment)
    if not kept:
        kept = [_segment(parts.hostname or "") or "output"]
    return "/".join(kept)
