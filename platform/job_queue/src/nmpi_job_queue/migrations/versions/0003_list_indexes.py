"""job list indexes: (collab | user_id | hardware_platform, status, id)

GET /jobs/ reads each (key, status) pair of a list newest first from one of these indexes
(domain/job_lists.py). They replace (collab, id) and (user_id, id), whose every other use
(lookups by collab or user_id) they serve as well.

Cost on a large table: CREATE INDEX reads the whole jobs table once per index and blocks
writes to it (submissions, provider updates, claims; reads go on) until it is done, and the
migration's transaction holds that lock until all three are built. Measured: 23-24 s for 1M
jobs (a 460 MB table), on 2 cores shared with a CI run (load average 22), so expect some seconds
per million jobs on a dedicated server, and writers waiting as long. (`nmpi-job-queue migrate`
lifts the service's statement timeouts, which would cancel it.) Where that is too long, build
the indexes beforehand without blocking writes, then migrate (these statements then find them
and do nothing):

    CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_jobs_collab_status_id
        ON jobs (collab, status, id);
    CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_jobs_user_id_status_id
        ON jobs (user_id, status, id);
    CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_jobs_platform_status_id
        ON jobs (hardware_platform, status, id);

(A CONCURRENTLY build that fails leaves an INVALID index: drop it and build it again.)
Dropping the two old indexes is instant.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = {
    "ix_jobs_collab_status_id": ["collab", "status", "id"],
    "ix_jobs_user_id_status_id": ["user_id", "status", "id"],
    "ix_jobs_platform_status_id": ["hardware_platform", "status", "id"],
}
OLD = {
    "ix_jobs_collab_id": ["collab", "id"],
    "ix_jobs_user_id_id": ["user_id", "id"],
}


def upgrade() -> None:
    for name, columns in NEW.items():
        op.create_index(name, "jobs", columns, if_not_exists=True)
    for name in OLD:
        op.drop_index(name, table_name="jobs", if_exists=True)


def downgrade() -> None:
    for name, columns in OLD.items():
        op.create_index(name, "jobs", columns, if_not_exists=True)
    for name in NEW:
        op.drop_index(name, table_name="jobs", if_exists=True)
