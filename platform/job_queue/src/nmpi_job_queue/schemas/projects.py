"""Resource requests (projects) and their quotas."""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


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

    limit: float = Field(ge=0)
    platform: str = Field(min_length=1, max_length=50)
    units: str = Field(min_length=1, max_length=30)


class QuotaUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: float | None = Field(default=None, ge=0)
    usage: float = Field(ge=0)


class ProjectSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collab: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=500)
    abstract: str = Field(max_length=10_000)
    description: str | None = Field(default=None, max_length=100_000)
    status: ProjectStatus = ProjectStatus.in_preparation


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=500)
    abstract: str | None = Field(default=None, max_length=10_000)
    description: str | None = Field(default=None, max_length=100_000)
    owner: str | None = Field(default=None, min_length=1, max_length=200)
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
