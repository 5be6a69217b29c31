"""Jobs, their data items, comments, tags and provider updates."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AnyUrl, BaseModel, ConfigDict, Field, StringConstraints

Tag = Annotated[str, StringConstraints(min_length=2, max_length=100, strip_whitespace=True)]


class JobStatus(StrEnum):
    submitted = "submitted"
    validated = "validated"
    running = "running"
    mapped = "mapped"
    finished = "finished"
    error = "error"
    removed = "removed"


class DataItem(BaseModel):
    url: AnyUrl
    path: str | None = None
    content_type: str | None = None
    size: int | None = Field(default=None, ge=0)
    hash: str | None = None


class DataSet(BaseModel):
    repository: str = Field(min_length=1, max_length=100)
    files: list[DataItem]


class ResourceUsage(BaseModel):
    value: float = Field(ge=0)
    units: str


class JobSubmission(BaseModel):
    """What the nmpi client POSTs to /jobs/.

    Unknown fields are ignored, as the reference does (a client resubmitting a job document
    it read sends status, id, user_id...), and named in a Warning header of the reply:
    "allow" keeps them in model_extra for that, and nothing else reads them.
    """

    model_config = ConfigDict(extra="allow")

    code: str = Field(min_length=1, max_length=10_000_000)
    command: str | None = Field(default=None, max_length=10_000)
    collab: str = Field(min_length=1, max_length=200)
    input_data: list[DataItem] | None = None
    hardware_platform: str = Field(min_length=1, max_length=50)
    hardware_config: dict[str, Any] | None = None
    tags: list[Tag] | None = None


class Comment(BaseModel):
    id: int
    job_id: int
    content: str
    user_id: str
    timestamp: datetime
    resource_uri: str


class CommentBody(BaseModel):
    content: str = Field(min_length=1, max_length=10_000)


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
    provenance: dict[str, Any] | None = None
    resource_usage: ResourceUsage | None = None
    log: str | None = None
