"""uploaded code archives

- `code_archives`: archives of jobs' code uploaded by collab members (docs/code-archives.md),
  one row per (collab, SHA-256) so that a collab's members see only their collab's uploads and
  the same bytes uploaded twice are stored once per collab. The bytes are in the database, so
  that Patroni replicates them with the jobs that refer to them: a failover loses neither.
- `content` is stored EXTERNAL: out of line, uncompressed. Archives are compressed already, and
  PostgreSQL would otherwise try (and fail) to compress every upload again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "code_archives",
        sa.Column("collab", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column(
            "uploaded",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "size = octet_length(content)", name=op.f("ck_code_archives_size_matches")
        ),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_code_archives_sha256_hex")),
        sa.PrimaryKeyConstraint("collab", "sha256", name=op.f("pk_code_archives")),
    )
    op.create_index(op.f("ix_code_archives_sha256"), "code_archives", ["sha256"])
    op.execute("ALTER TABLE code_archives ALTER COLUMN content SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_index(op.f("ix_code_archives_sha256"), table_name="code_archives")
    op.drop_table("code_archives")
