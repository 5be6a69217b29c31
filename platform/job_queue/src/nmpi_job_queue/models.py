"""Database tables (SQLAlchemy 2). The API's shapes live in schemas/, not here."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so that migrations can refer to them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JOB_STATUSES = ("submitted", "validated", "running", "mapped", "finished", "error", "removed")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(Text)
    command: Mapped[str | None] = mapped_column(Text)
    collab: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), server_default="submitted")
    hardware_platform: Mapped[str] = mapped_column(String(50))
    hardware_config: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    resource_usage: Mapped[float | None] = mapped_column(Float)
    # Lists of data items {url, path, hash, size, content_type}; output items are unique by url.
    input_data: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    output_data: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    output_repository: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(100)), server_default="{}")
    timestamp_submission: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    timestamp_completion: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The claim (see domain/claims.py): which provider holds the job under which claim id, and
    # until when while the job is still `submitted` (NULL once the site confirmed it: held).
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claim_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    claim_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who removed the job (status `removed`), when and why: shown to admins and, as the
    # reason of a 410, to the users who could see the job.
    removed_by: Mapped[str | None] = mapped_column(String(200))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removal_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status"),
        # The queue: oldest submitted job per platform, found without scanning.
        Index(
            "ix_jobs_queue",
            "hardware_platform",
            "id",
            postgresql_where=text("status = 'submitted'"),
        ),
        # Lists, newest first, of a collab's, a user's or a platform's jobs with given statuses
        # (domain/job_lists.py): each read in id order and from the index alone.
        Index("ix_jobs_collab_status_id", "collab", "status", "id"),
        Index("ix_jobs_user_id_status_id", "user_id", "status", "id"),
        Index("ix_jobs_platform_status_id", "hardware_platform", "status", "id"),
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_tags", "tags", postgresql_using="gin"),
        # GET /jobs/?search=: trigrams of the command and tags (migration 0004, which creates
        # the function job_search_text and skips the index where pg_trgm is not available).
        Index(
            "ix_jobs_search_trgm",
            text("job_search_text(command, tags) gin_trgm_ops"),
            postgresql_using="gin",
        ),
    )
    # A submission reads its server defaults (id, status, tags, timestamp) back with the
    # INSERT's RETURNING, instead of a second SELECT.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012


class JobLog(Base):
    """Kept apart from jobs so that listing jobs never reads megabytes of logs."""

    __tablename__ = "job_logs"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    content: Mapped[str] = mapped_column(Text, server_default="")


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    created_time: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Project(Base):
    """A resource request; `id` is also what the reference API calls the project's context."""

    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    collab: Mapped[str] = mapped_column(String(200), index=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    submission_date: Mapped[date | None] = mapped_column(Date)
    decision_date: Mapped[date | None] = mapped_column(Date)
    accepted: Mapped[bool] = mapped_column(Boolean, server_default="false")


class Quota(Base):
    __tablename__ = "quotas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    platform: Mapped[str] = mapped_column(String(50))
    units: Mapped[str] = mapped_column(String(30))
    limit: Mapped[float] = mapped_column(Float)
    usage: Mapped[float] = mapped_column(Float, server_default="0")


class Session(Base):
    """Direct-access sessions on a hardware system (accounting only)."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collab: Mapped[str] = mapped_column(String(200), index=True)
    user_id: Mapped[str] = mapped_column(String(200))
    hardware_platform: Mapped[str] = mapped_column(String(50))
    hardware_config: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), server_default="running")
    timestamp_start: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    timestamp_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resource_usage: Mapped[float] = mapped_column(Float, server_default="0")


# --- identity (local mode) and provider keys ---------------------------------------------


class User(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(200), primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200), server_default="")
    email: Mapped[str] = mapped_column(String(200), server_default="")
    given_name: Mapped[str] = mapped_column(String(100), server_default="")
    family_name: Mapped[str] = mapped_column(String(100), server_default="")


class Collab(Base):
    __tablename__ = "collabs"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    title: Mapped[str] = mapped_column(String(200), server_default="")
    public: Mapped[bool] = mapped_column(Boolean, server_default="false")


class Membership(Base):
    __tablename__ = "memberships"

    username: Mapped[str] = mapped_column(
        ForeignKey("users.username", ondelete="CASCADE"), primary_key=True
    )
    collab: Mapped[str] = mapped_column(
        ForeignKey("collabs.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(20))

    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'editor', 'administrator')", name="role"),
    )


class Token(Base):
    """A user's API token; only its SHA-256 is stored (tokens are random, 256-bit)."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(
        ForeignKey("users.username", ondelete="CASCADE"), index=True
    )
    description: Mapped[str] = mapped_column(String(200), server_default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CodeArchive(Base):
    """An archive of a job's code uploaded by a collab member (docs/code-archives.md): stored
    in the database, so that it is replicated with the jobs that refer to it, and served to
    the hardware sites by its SHA-256."""

    __tablename__ = "code_archives"

    collab: Mapped[str] = mapped_column(String(200), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    format: Mapped[str] = mapped_column(String(10))
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(255))
    uploaded_by: Mapped[str] = mapped_column(String(200))
    uploaded: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    content: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        CheckConstraint("size = octet_length(content)", name="size_matches"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
    )


class WebSession(Base):
    """A browser's signed-in session (docs/web-sessions.md): the cookie holds a random secret,
    the database its SHA-256, and what the session was made from."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # Local mode: the token signed in with; revoking (deleting) it deletes the session.
    token_sha256: Mapped[str | None] = mapped_column(
        ForeignKey("tokens.token_sha256", ondelete="CASCADE"), index=True
    )
    # OIDC mode: the provider's access token, the session's identity (checked at userinfo).
    access_token: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("(token_sha256 IS NULL) <> (access_token IS NULL)", name="one_credential"),
    )


class WebLogin(Base):
    """A browser sign-in under way at the OIDC provider (authorization code flow with PKCE):
    what the callback needs, keyed by the SHA-256 of the `state` sent to the provider."""

    __tablename__ = "web_logins"

    state_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(100))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_path: Mapped[str] = mapped_column(Text)
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ProviderKey(Base):
    """A hardware provider's API key (x-api-key), bound to the queues it may serve."""

    __tablename__ = "provider_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    provider: Mapped[str] = mapped_column(String(100))
    platforms: Mapped[list[str]] = mapped_column(ARRAY(String(50)))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (UniqueConstraint("provider", "key_sha256"),)


class ServiceStatus(Base):
    """The maintenance switch: one row. ok, read-only (writes answer 503) or down (all 503)."""

    __tablename__ = "service_status"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    status: Mapped[str] = mapped_column(String(20), server_default="ok")
    message: Mapped[str] = mapped_column(Text, server_default="")

    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("status IN ('ok', 'read-only', 'down')", name="status"),
    )
