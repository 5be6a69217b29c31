#!/usr/bin/env python3
"""Keep `docker save` archives of local images in a cache folder, re-saving only what changed.

    image_archive.py CACHE_DIR IMAGE [IMAGE ...]

For each IMAGE (name:tag, present in the controller's engine) the archive is
CACHE_DIR/<name>-<tag>.tar.gz (a name's '/' become folders, a registry port's ':' a '_'), and
beside it <name>-<tag>.tar.gz.id holds the image ID (`docker image inspect`) the archive was
saved from. An archive is (re)written only when it is missing or that ID differs from the
image's current ID, through a temporary file renamed into place, under a lock on the cache
folder so that two runs at once (parallel plays, molecule scenarios) neither clash nor save
twice.

Archives are gzip-compressed at level 1 (`docker save | gzip -1`): the images shrink about 2.5
times, and it is those bytes every host receives over SSH, while `docker load` reads gzip
itself (zstd only from Docker 23; Debian 12's engine is 20.10). Images are saved two at a time.

Prints one JSON object: {"changed": bool, "images": {IMAGE: {"id", "archive", "saved"}}}.
Exits 1 with a message on stderr when an image is missing or docker fails. The docker CLI is
$DOCKER (default: docker on PATH).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

IMAGE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._/:-]*?):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$"
)


class ArchiveError(RuntimeError):
    """An image cannot be archived; the message says why and what to do."""


def docker(*args: str) -> str:
    cli = os.environ.get("DOCKER", "docker")
    try:
        done = subprocess.run([cli, *args], capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise ArchiveError(f"docker CLI not found ({cli}): {error}") from error
    if done.returncode != 0:
        raise ArchiveError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def archive_path(cache: Path, image: str) -> Path:
    match = IMAGE.match(image)
    if match is None:
        raise ArchiveError(f"{image!r} is not name:tag (an explicit tag is required)")
    name = match["name"].replace(":", "_")
    return cache / f"{name}-{match['tag']}.tar.gz"


def image_id(image: str) -> str:
    try:
        return docker("image", "inspect", "--format", "{{.Id}}", image).strip()
    except ArchiveError as error:
        raise ArchiveError(
            f"image {image} is not in the controller's Docker engine: build it first "
            f"(images/build.sh) or set container_images_registry ({error})"
        ) from error


def write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_compressed(image: str, dest: Path) -> None:
    """docker save IMAGE | gzip -1 > DEST; an ArchiveError names the step that failed."""
    cli = os.environ.get("DOCKER", "docker")
    with dest.open("wb") as out:
        try:
            save = subprocess.Popen(
                [cli, "image", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except FileNotFoundError as error:
            raise ArchiveError(f"docker CLI not found ({cli}): {error}") from error
        assert save.stdout is not None
        gzip = subprocess.run(
            ["gzip", "-1", "-n"], stdin=save.stdout, stdout=out, stderr=subprocess.PIPE, check=False
        )
        save.stdout.close()
        save_err = save.stderr.read().decode(errors="replace") if save.stderr else ""
        if save.wait() != 0:
            raise ArchiveError(f"docker image save {image} failed: {save_err.strip()}")
        if gzip.returncode != 0:
            message = gzip.stderr.decode(errors="replace").strip()
            raise ArchiveError(f"gzip of {image}'s archive failed: {message}")


def ensure(cache: Path, image: str) -> dict[str, Any]:
    archive = archive_path(cache, image)
    marker = archive.with_name(archive.name + ".id")
    wanted = image_id(image)
    current = marker.read_text().strip() if marker.is_file() else ""
    if current == wanted and archive.is_file() and archive.stat().st_size > 0:
        return {"id": wanted, "archive": str(archive), "saved": False}
    archive.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.")
    os.close(fd)
    try:
        save_compressed(image, Path(tmp))
        # The tag may have moved while saving: record the ID the archive really holds.
        if image_id(image) != wanted:
            raise ArchiveError(f"{image} changed while it was being saved; run again")
        os.chmod(tmp, 0o644)
        os.replace(tmp, archive)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    write_atomically(marker, f"{wanted}\n".encode())
    return {"id": wanted, "archive": str(archive), "saved": True}


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cache = Path(argv[1]).resolve()
    images = argv[2:]
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # Two at a time: docker save and gzip each keep about one core busy.
            with ThreadPoolExecutor(max_workers=2) as pool:
                done = list(pool.map(lambda image: ensure(cache, image), images))
            results = dict(zip(images, done, strict=True))
    except (ArchiveError, OSError) as error:
        print(f"image_archive: {error}", file=sys.stderr)
        return 1
    changed = any(r["saved"] for r in results.values())
    print(json.dumps({"changed": changed, "images": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
