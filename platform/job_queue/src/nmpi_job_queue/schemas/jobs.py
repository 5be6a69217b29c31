"""Jobs, their data items, comments, tags and provider updates."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .. import limits

Tag = limits.Tag


class JobStatus(StrEnum):
    submitted = "submitted"
    validated = "validated"
    running = "running"
    mapped = "mapped"
    finished = "finished"
    error = "error"
    removed = "removed"


class JobFields(StrEnum):
    """What each job of a list carries (GET /jobs/?fields=)."""

    full = "full"
    summary = "summary"  # without code, log and comments


class DataItem(BaseModel):
    url: limits.Url
    path: str | None = Field(default=None, max_length=limits.PATH_MAX_CHARS)
    content_type: str | None = Field(default=None, max_length=limits.CONTENT_TYPE_MAX_CHARS)
    size: int | None = Field(default=None, ge=0, le=limits.FILE_SIZE_MAX)
    hash: str | None = Field(default=None, max_length=limits.HASH_MAX_CHARS)


class DataSet(BaseModel):
    repository: str = Field(min_length=1, max_length=limits.REPOSITORY_MAX_CHARS)
    files: list[DataItem]  # how many: domain/data_items.py (a job's total, over its PUTs)


class ResourceUsage(BaseModel):
    value: limits.Amount
    units: str = Field(max_length=limits.UNITS_MAX_CHARS)


class JobSubmission(BaseModel):
    """What the nmpi client POSTs to /jobs/.

    Unknown fields are ignored, as the reference does (a client resubmitting a job document
    it read sends status, id, user_id...), and named in a Warning header of the reply:
    "allow" keeps them in model_extra for that, and nothing else reads them.
    """

    model_config = ConfigDict(extra="allow")

    code: str = Field(min_length=1, max_length=limits.CODE_MAX_CHARS)
    command: str | None = Field(default=None, max_length=limits.COMMAND_MAX_CHARS)
    collab: str = Field(min_length=1, max_length=limits.COLLAB_MAX_CHARS)
    input_data: list[DataItem] | None = Field(default=None, max_length=limits.INPUT_ITEMS_MAX)
    hardware_platform: str = Field(min_length=1, max_length=limits.PLATFORM_MAX_CHARS)
    hardware_config: limits.HardwareConfig | None = None
    tags: list[Tag] | None = Field(default=None, max_length=limits.TAGS_MAX)


class Comment(BaseModel):
    id: int
    job_id: int
    content: str
    user_id: str
    timestamp: datetime
    resource_uri: str


class CommentBody(BaseModel):
    content: str = Field(min_length=1, max_length=limits.COMMENT_MAX_CHARS)


class Job(BaseModel):
    id: int
    resource_uri: str
    code: str
    command: str | None = None
    collab: str
    user_id: str
    status: JobStatus
    hardware_platform: str
    hardware_config: dict[str, Any] | None = None
    input_data: list[DataItem] = []
    output_data: DataSet  # files may be [] (the client reads output_data["files"])
    provenance: dict[str, Any] | None = None
    resource_usage: ResourceUsage | None = None
    tags: list[str] = []
    timestamp_submission: datetime
    timestamp_completion: datetime | None = None
    comments: list[Comment] | None = None
    log: str | None = None
    # Set on removed jobs, which only administrators (and the site serving them) can read.
    removed_by: str | None = None
    removed_at: datetime | None = None
    removal_reason: str | None = None


class JobUpdate(BaseModel):
    """A provider's PUT /jobs/{id}: every field optional, repeated PUTs change nothing more."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    output_data: DataSet | None = None
    provenance: limits.Provenance | None = None
    resource_usage: ResourceUsage | None = None
    log: str | None = Field(default=None, max_length=limits.LOG_MAX_CHARS)
