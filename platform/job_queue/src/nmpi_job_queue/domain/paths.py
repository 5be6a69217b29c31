"""Local paths for output files that a hardware site published by URL only."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

# Control characters, and what Windows refuses in a file name (a ':' would also make the
# path drive-relative there).
_UNSAFE = re.compile(r'[\x00-\x1f\x7f:*?"<>|]')


def path_from_url(url: str) -> str:
    """A relative path for the file at `url`, for output items that came without one.

    The nmpi client's download_data() saves each item at `os.path.join(local_dir, path)`: the
    path must stay inside local_dir. It is the URL's path, percent-decoded, with its segments
    split at '/' and '\\', and those made only of dots and spaces ('', '.', '..', '. .': what
    would climb out or vanish on Windows) left out; the host when nothing remains. The
    reference service derives it from the URL too, but may give an absolute path.
    """
    parts = urlsplit(url)
    segments = [
        _UNSAFE.sub("_", segment)
        for segment in unquote(parts.path).replace("\\", "/").split("/")
        if segment.strip(". ")
    ]
    if not segments:
        host = _UNSAFE.sub("_", parts.hostname or "").strip(". ")
        segments = [host or "output"]
    return "/".join(segments)
