"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 04:22:04.158075
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collabs",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), server_default="", nullable=False),
        sa.Column("public", sa.Boolean(), server_default="false", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collabs")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("collab", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="submitted", nullable=False),
        sa.Column("hardware_platform", sa.String(length=50), nullable=False),
        sa.Column("hardware_config", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("provenance", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("resource_usage", sa.Float(), nullable=True),
        sa.Column("input_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("output_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("output_repository", sa.String(length=100), nullable=True),
        sa.Column(
            "tags", postgresql.ARRAY(sa.String(length=100)), server_default="{}", nullable=False
        ),
        sa.Column(
            "timestamp_submission",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("timestamp_completion", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('submitted', 'validated', 'running', 'mapped', "
            "'finished', 'error', 'removed')",
            name=op.f("ck_jobs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_collab_id", "jobs", ["collab", "id"], unique=False)
    op.create_index(
        "ix_jobs_queue",
        "jobs",
        ["hardware_platform", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'submitted'"),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"], unique=False)
    op.create_index("ix_jobs_tags", "jobs", ["tags"], unique=False, postgresql_using="gin")
    op.create_index("ix_jobs_user_id_id", "jobs", ["user_id", "id"], unique=False)
    op.create_table(
        "projects",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("collab", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("submission_date", sa.Date(), nullable=True),
        sa.Column("decision_date", sa.Date(), nullable=True),
        sa.Column("accepted", sa.Boolean(), server_default="false", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_index(op.f("ix_projects_collab"), "projects", ["collab"], unique=False)
    op.create_index(op.f("ix_projects_owner"), "projects", ["owner"], unique=False)
    op.create_table(
        "provider_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("platforms", postgresql.ARRAY(sa.String(length=50)), nullable=False),
        sa.Column(
            "created", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_keys")),
        sa.UniqueConstraint("key_sha256", name=op.f("uq_provider_keys_key_sha256")),
        sa.UniqueConstraint("provider", "key_sha256", name=op.f("uq_provider_keys_provider")),
    )
    op.create_table(
        "service_status",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="ok", nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'read-only', 'down')", name=op.f("ck_service_status_status")
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_service_status_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_status")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collab", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("hardware_platform", sa.String(length=50), nullable=False),
        sa.Column("hardware_config", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="running", nullable=False),
        sa.Column(
            "timestamp_start",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("timestamp_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resource_usage", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_collab"), "sessions", ["collab"], unique=False)
    op.create_table(
        "users",
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("full_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("email", sa.String(length=200), server_default="", nullable=False),
        sa.Column("given_name", sa.String(length=100), server_default="", nullable=False),
        sa.Column("family_name", sa.String(length=100), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_users")),
    )
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "created_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_comments_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    op.create_index(op.f("ix_comments_job_id"), "comments", ["job_id"], unique=False)
    op.create_table(
        "job_logs",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_logs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_logs")),
    )
    op.create_table(
        "memberships",
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("collab", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.CheckConstraint(
            "role IN ('viewer', 'editor', 'administrator')", name=op.f("ck_memberships_role")
        ),
        sa.ForeignKeyConstraint(
            ["collab"],
            ["collabs.id"],
            name=op.f("fk_memberships_collab_collabs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["username"],
            ["users.username"],
            name=op.f("fk_memberships_username_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("username", "collab", name=op.f("pk_memberships")),
    )
    op.create_table(
        "quotas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("platform", sa.String(length=50), nullable=False),
        sa.Column("units", sa.String(length=30), nullable=False),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("usage", sa.Float(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_quotas_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotas")),
    )
    op.create_index(op.f("ix_quotas_project_id"), "quotas", ["project_id"], unique=False)
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=200), server_default="", nullable=False),
        sa.Column(
            "created", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["username"],
            ["users.username"],
            name=op.f("fk_tokens_username_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_tokens_token_sha256")),
    )
    op.create_index(op.f("ix_tokens_username"), "tokens", ["username"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tokens_username"), table_name="tokens")
    op.drop_table("tokens")
    op.drop_index(op.f("ix_quotas_project_id"), table_name="quotas")
    op.drop_table("quotas")
    op.drop_table("memberships")
    op.drop_table("job_logs")
    op.drop_index(op.f("ix_comments_job_id"), table_name="comments")
    op.drop_table("comments")
    op.drop_table("users")
    op.drop_index(op.f("ix_sessions_collab"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("service_status")
    op.drop_table("provider_keys")
    op.drop_index(op.f("ix_projects_owner"), table_name="projects")
    op.drop_index(op.f("ix_projects_collab"), table_name="projects")
    op.drop_table("projects")
    op.drop_index("ix_jobs_user_id_id", table_name="jobs")
    op.drop_index("ix_jobs_tags", table_name="jobs", postgresql_using="gin")
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_index(
        "ix_jobs_queue", table_name="jobs", postgresql_where=sa.text("status = 'submitted'")
    )
    op.drop_index("ix_jobs_collab_id", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("collabs")
