"""The query behind GET /jobs/: a page of jobs, newest first, at the same cost at any depth.

Every list names a key column (collab, user_id or hardware_platform) with its values, and
statuses. Each (value, status) pair is read newest first from its own index (key, status, id),
ids only, which PostgreSQL reads from the index alone (the visibility map, which autovacuum
keeps, lets it skip the table); the pairs' ids are merged, the page cut from them, and only the
page's rows read. The shape leaves the planner no cheaper way than these indexes:

- The obvious `WHERE collab = 'x' ORDER BY id DESC LIMIT 10` lets PostgreSQL walk the primary
  key backwards and filter, betting that the collab's jobs are spread evenly over time. For a
  quiet collab among busy ones it reads every newer job of the others (3,000 newer jobs: 2.6 ms
  instead of 0.08 ms; 100,000: 150 ms). The walk reads the table; an index-only scan does not,
  so it cannot look cheaper.
- Several collabs or statuses in one index scan come out in index order, not id order, so all
  their jobs would be read and sorted. One LATERAL scan per (value, status) reads a page at
  most.
- The keyset cursor `before_id` starts the scans there. `from_index` (offset, as the
  reference's clients send it) still steps over that many entries, but index entries, not rows.

Filters on other columns (tags, dates, a second key) need the rows: those of each (value,
status) pair are read to check them, still pair by pair and newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    cast,
    column,
    func,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased
from sqlalchemy.sql.selectable import TableValuedAlias

from .. import models

J = models.Job
KeyColumn = Literal["collab", "user_id", "hardware_platform"]
# Removed jobs are never listed.
LISTED_STATUSES = tuple(s for s in models.JOB_STATUSES if s != "removed")


@dataclass
class JobListing:
    """Which jobs: `key` among `values`, with one of `statuses`, meeting all `conditions`."""

    key: KeyColumn
    values: Sequence[str]
    statuses: Sequence[str] = LISTED_STATUSES
    # Checked on each row the index scans find (tags, dates, a second key...).
    conditions: list[ColumnElement[bool]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.values or not self.statuses


def _unnest(values: Sequence[str], name: str) -> tuple[TableValuedAlias, ColumnElement[str]]:
    """A one-column table of `values` (one array parameter: the same SQL for any number)."""
    array = cast(literal(list(values)), ARRAY(String))
    table = func.unnest(array).table_valued(column("value", String)).render_derived(name=name)
    return table, table.c.value


def page_query(
    listing: JobListing, *, limit: int, offset: int = 0, before_id: int | None = None
) -> Select[models.Job]:
    """Up to `limit` jobs of `listing`, newest first, after skipping `offset` of them, all with
    an id below `before_id` if given."""
    keys, key = _unnest(listing.values, "k")
    statuses, status = _unnest(listing.statuses, "s")
    conditions = [getattr(J, listing.key) == key, J.status == status, *listing.conditions]
    if before_id is not None:
        conditions.append(J.id < before_id)
    newest = (
        select(J.id)
        .where(*conditions)
        .order_by(J.id.desc())
        .limit(offset + limit)
        .lateral("newest")
    )
    page = (
        select(newest.c.id)
        .select_from(keys)
        .join(statuses, true())
        .join(newest, true())
        .order_by(newest.c.id.desc())
        .offset(offset)
        .limit(limit)
        .subquery("page")
    )
    # Each row by its primary key. A plain join would do with a known LIMIT; but a prepared
    # statement's generic plan (asyncpg's, once reused) takes a LIMIT parameter for 10% of the
    # rows and may then merge-join along the whole primary key. LIMIT 1 keeps PostgreSQL from
    # flattening this LATERAL subquery into such a join: one index lookup per id, always.
    row = select(J).where(J.id == page.c.id).limit(literal_column("1", Integer)).lateral("job")
    return select(aliased(J, row)).select_from(page).join(row, true()).order_by(page.c.id.desc())
