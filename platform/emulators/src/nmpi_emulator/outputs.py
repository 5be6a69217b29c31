"""The files a run created or changed: path, size, sha256, content type and download URL."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import stat
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Collected:
    files: list[dict[str, object]]  # sorted by path
    omitted: int  # changed files left out past max_files


def snapshot(job_dir: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of the regular files under job_dir, links not followed."""
    return {relative: (info.st_size, info.st_mtime_ns) for relative, info in _walk(job_dir)}


def collect(
    job_dir: Path,
    before: Mapping[str, tuple[int, int]],
    base_url: str,
    job_id: int,
    *,
    max_files: int = 1000,
    exclude: Collection[str] = (),
) -> Collected:
    """The regular files that are new or whose size or mtime changed since `before`."""
    changed = sorted(
        (relative, info)
        for relative, info in _walk(job_dir)
        if relative not in exclude and before.get(relative) != (info.st_size, info.st_mtime_ns)
    )
    files: list[dict[str, object]] = []
    base = base_url.rstrip("/")
    for relative, info in changed[:max_files]:
        digest = _sha256(job_dir / relative)
        if digest is None:
            continue  # replaced by something other than a regular file meanwhile
        content_type, _ = mimetypes.guess_type(relative, strict=False)
        files.append(
            {
                "url": f"{base}/{job_id}/{quote(relative)}",
                "path": relative,
                "size": info.st_size,
                "hash": digest,
                "content_type": content_type or "application/octet-stream",
            }
        )
    return Collected(files, max(0, len(changed) - max_files))


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    stack = [""]
    while stack:
        prefix = stack.pop()
        try:
            entries = list(os.scandir(root / prefix if prefix else root))
        except OSError:
            continue
        for entry in entries:
            relative = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(relative)
            elif stat.S_ISREG(info.st_mode):
                yield relative, info


def _sha256(path: Path) -> str | None:
    # O_NOFOLLOW: the job's process may have swapped the file for a link since the walk.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None
        digest = hashlib.sha256()
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
