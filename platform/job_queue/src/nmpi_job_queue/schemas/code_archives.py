"""Uploaded archives of jobs' code (docs/code-archives.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ArchiveFormat = Literal["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"]


class CodeArchive(BaseModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int
    format: ArchiveFormat
    filename: str
    collab: str
    uploaded_by: str
    uploaded: datetime
    path: str = Field(
        description="where the archive is served: a job's `code` is this deployment's base URL "
        "followed by this path, and the hardware sites download it with their provider key"
    )
