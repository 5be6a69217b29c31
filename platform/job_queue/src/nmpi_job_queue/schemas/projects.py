"""Resource requests (projects) and their quotas."""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from .. import limits


class ProjectStatus(StrEnum):
    in_preparation = "in preparation"
    under_review = "under review"
    accepted = "accepted"
    rejected = "rejected"


class Quota(BaseModel):
    id: int
    resource_uri: str
    project: str  # the project's resource_uri, as the reference gives it
    platform: str
    units: str
    limit: float
    usage: float


class QuotaSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: limits.Amount
    platform: str = Field(min_length=1, max_length=limits.PLATFORM_MAX_CHARS)
    units: str = Field(min_length=1, max_length=limits.UNITS_MAX_CHARS)


class QuotaUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: limits.Amount | None = None
    usage: limits.Amount


class ProjectSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collab: str = Field(min_length=1, max_length=limits.COLLAB_MAX_CHARS)
    title: str = Field(min_length=1, max_length=limits.TITLE_MAX_CHARS)
    abstract: str = Field(max_length=limits.ABSTRACT_MAX_CHARS)
    description: str | None = Field(default=None, max_length=limits.DESCRIPTION_MAX_CHARS)
    status: ProjectStatus = ProjectStatus.in_preparation


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=limits.TITLE_MAX_CHARS)
    abstract: str | None = Field(default=None, max_length=limits.ABSTRACT_MAX_CHARS)
    description: str | None = Field(default=None, max_length=limits.DESCRIPTION_MAX_CHARS)
    owner: str | None = Field(default=None, min_length=1, max_length=limits.OWNER_MAX_CHARS)
    status: ProjectStatus | None = None


class Project(BaseModel):
    id: uuid.UUID
    context: uuid.UUID  # the 0.11.2 client reads it after submitting
    resource_uri: str
    collab: str
    owner: str
    title: str
    abstract: str
    description: str
    status: ProjectStatus
    submission_date: date | None = None
    decision_date: date | None = None
    quotas: list[Quota] = []
