"""claim leases and removal records on jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000

Jobs claimed before this revision were marked `validated` at once and keep that status; they
get no claim columns (NULL: no provider holds them), so any provider serving their platform
may finish them, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without defaults: PostgreSQL adds them without rewriting the table.
    op.add_column("jobs", sa.Column("claimed_by", sa.String(length=100), nullable=True))
    op.add_column("jobs", sa.Column("claim_id", sa.UUID(), nullable=True))
    op.add_column("jobs", sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("removed_by", sa.String(length=200), nullable=True))
    op.add_column("jobs", sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("removal_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    for column in (
        "removal_reason",
        "removed_at",
        "removed_by",
        "claim_expires_at",
        "claim_id",
        "claimed_by",
    ):
        op.drop_column("jobs", column)
