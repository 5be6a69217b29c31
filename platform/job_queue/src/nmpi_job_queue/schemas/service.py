"""Service information, identity, sessions and statistics."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .. import limits
from .jobs import ResourceUsage


class ServiceState(StrEnum):
    ok = "ok"
    read_only = "read-only"
    down = "down"


class ServerInfo(BaseModel):
    about: str
    version: str
    status: str
    links: dict[str, str]
    authentication: dict[str, Any]


class UserInfo(BaseModel):
    """Shaped like an OIDC userinfo reply, as the nmpi client reads it."""

    sub: str
    preferred_username: str
    name: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    roles: dict[str, list[str]]


class SessionStatus(StrEnum):
    running = "running"
    finished = "finished"
    error = "error"
    removed = "removed"


class SessionCreation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collab: str = Field(min_length=1, max_length=limits.COLLAB_MAX_CHARS)
    user_id: str = Field(min_length=1, max_length=limits.USER_ID_MAX_CHARS)
    hardware_platform: str = Field(min_length=1, max_length=limits.PLATFORM_MAX_CHARS)
    hardware_config: limits.HardwareConfig | None = None


class SessionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: SessionStatus = SessionStatus.running
    resource_usage: ResourceUsage


class Session(BaseModel):
    id: int
    resource_uri: str
    collab: str
    user_id: str
    hardware_platform: str
    hardware_config: dict[str, Any] | None = None
    status: SessionStatus
    timestamp_start: datetime
    timestamp_end: datetime | None = None
    resource_usage: ResourceUsage


class QueueLength(BaseModel):
    queue_name: str
    submitted: int
    running: int


class DateRangeCount(BaseModel):
    start: date
    end: date
    count: dict[str, int]


class JobDuration(BaseModel):
    platform: str
    status: str
    count: int
    median_seconds: float | None
    p90_seconds: float | None


class ResourceUsageTotal(BaseModel):
    platform: str
    units: str
    value: float
