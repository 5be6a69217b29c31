"""browser sessions and sign-ins; job search index

- `web_sessions`: signed-in browsers (docs/web-sessions.md). A session made from a local
  token references it (ON DELETE CASCADE): revoking the token ends the session.
- `web_logins`: OIDC sign-ins under way (state, nonce, PKCE verifier), ten minutes each.
- `job_search_text(command, tags)`: what GET /jobs/?search= matches, the command and the tags
  joined by U+001F (which a search may not contain, so no match spans two of them), and a
  trigram GIN index on it (pg_trgm), so that a search reads the matching jobs rather than all
  of a collab's. pg_trgm is created if missing; Debian's postgresql ships it, and it is a
  trusted extension (the database owner may create it). Where it cannot be created the index
  is left out (a warning says so): search still works, by reading each listed job.

Cost on a large table: the GIN index reads the whole jobs table and blocks writes to it until
it is built (measured: 1.3 s for 100,000 jobs on a loaded 2-core machine). Where that is too
long, build it beforehand without blocking writes, then migrate (its CREATE INDEX IF NOT
EXISTS then finds it):

    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE FUNCTION job_search_text(command text, tags varchar[]) ...  -- as below
    CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_jobs_search_trgm
        ON jobs USING gin (job_search_text(command, tags) gin_trgm_ops);

The keyset list of a collab's jobs (collab, status, id) is served by ix_jobs_collab_status_id
(0003); date filters are checked on the rows read through it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 09:00:00.000000
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

# IMMUTABLE so that it can be indexed (array_to_string is only STABLE, for arrays of types
# whose output depends on settings; not so for varchar). Not inlined, hence the same
# expression in queries and index.
SEARCH_FUNCTION = """
CREATE OR REPLACE FUNCTION job_search_text(command text, tags varchar[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN coalesce(command, '') || E'\\x1f' || array_to_string(tags, E'\\x1f')
"""
SEARCH_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_jobs_search_trgm "
    "ON jobs USING gin (job_search_text(command, tags) gin_trgm_ops)"
)


def _have_pg_trgm() -> bool:
    bind = op.get_bind()
    try:
        with bind.begin_nested():  # a failure must not abort the migration's transaction
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as error:
        log.warning(
            "pg_trgm cannot be created (%s): job search works without its index, reading "
            "each listed job; to add it later, create the extension and the index as in "
            "migration 0004",
            str(error.orig).splitlines()[0],
        )
        return False
    return True


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=True),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(token_sha256 IS NULL) <> (access_token IS NULL)",
            name=op.f("ck_web_sessions_one_credential"),
        ),
        sa.ForeignKeyConstraint(
            ["token_sha256"],
            ["tokens.token_sha256"],
            name=op.f("fk_web_sessions_token_sha256_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_web_sessions_secret_sha256")),
    )
    op.create_index(op.f("ix_web_sessions_expires"), "web_sessions", ["expires"])
    op.create_index(op.f("ix_web_sessions_last_seen"), "web_sessions", ["last_seen"])
    op.create_index(op.f("ix_web_sessions_token_sha256"), "web_sessions", ["token_sha256"])
    op.create_table(
        "web_logins",
        sa.Column("state_sha256", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=100), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("next_path", sa.Text(), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_sha256", name=op.f("pk_web_logins")),
    )
    op.create_index(op.f("ix_web_logins_expires"), "web_logins", ["expires"])
    op.execute(SEARCH_FUNCTION)
    if _have_pg_trgm():
        op.execute(SEARCH_INDEX)


def downgrade() -> None:
    # pg_trgm stays: other databases' objects may use it, and it costs nothing.
    op.execute("DROP INDEX IF EXISTS ix_jobs_search_trgm")
    op.execute("DROP FUNCTION IF EXISTS job_search_text(text, varchar[])")
    op.drop_index(op.f("ix_web_logins_expires"), table_name="web_logins")
    op.drop_table("web_logins")
    op.drop_index(op.f("ix_web_sessions_token_sha256"), table_name="web_sessions")
    op.drop_index(op.f("ix_web_sessions_last_seen"), table_name="web_sessions")
    op.drop_index(op.f("ix_web_sessions_expires"), table_name="web_sessions")
    op.drop_table("web_sessions")
