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

A text search (`search_condition`) matches `job_search_text(command, tags)`, an SQL function of
migration 0004 with a trigram GIN index: for a rare text PostgreSQL reads the index's matches
instead of every job of the pair, for a common one the pair's newest jobs until the page is
full (tests/test_job_filters.py checks both on 100,000 jobs).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    column,
    false,
    func,
    literal_column,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased
from sqlalchemy.sql.selectable import TableValuedAlias

from .. import models

J = models.Job
MAX_JOB_ID = 2**63 - 1
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


def _unnest(name: str) -> tuple[TableValuedAlias, ColumnElement[str]]:
    """A one-column table of the values of the array parameter `name` (one parameter, so the
    SQL is the same for any number of values)."""
    array = bindparam(name, type_=ARRAY(String))  # typed: asyncpg is told it is VARCHAR[]
    table = func.unnest(array).table_valued(column("value", String)).render_derived(name=name)
    return table, table.c.value


def _statement(
    key_column: KeyColumn, conditions: Sequence[ColumnElement[bool]], cursor: bool
) -> Select[models.Job]:
    keys, key = _unnest("keys")
    statuses, status = _unnest("statuses")
    where = [getattr(J, key_column) == key, J.status == status, *conditions]
    if cursor:
        where.append(J.id < bindparam("before_id", type_=BigInteger))
    newest = (
        select(J.id)
        .where(*where)
        .order_by(J.id.desc())
        .limit(bindparam("scan_limit", type_=Integer))
        .lateral("newest")
    )
    page = (
        select(newest.c.id)
        .select_from(keys)
        .join(statuses, true())
        .join(newest, true())
        .order_by(newest.c.id.desc())
        .offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
        .subquery("page")
    )
    # Each row by its primary key. A plain join would do with a known LIMIT; but a prepared
    # statement's generic plan (asyncpg's, once reused) takes a LIMIT parameter for 10% of the
    # rows and may then merge-join along the whole primary key. LIMIT 1 keeps PostgreSQL from
    # flattening this LATERAL subquery into such a join: one index lookup per id, always.
    row = select(J).where(J.id == page.c.id).limit(literal_column("1", Integer)).lateral("job")
    return select(aliased(J, row)).select_from(page).join(row, true()).order_by(page.c.id.desc())


@functools.cache
def _plain_statement(key_column: KeyColumn, cursor: bool) -> Select[models.Job]:
    """Built once: building the statement costs more CPU than the rest of running it."""
    return _statement(key_column, (), cursor)


def page_query(
    listing: JobListing, *, limit: int, offset: int = 0, before_id: int | None = None
) -> tuple[Select[models.Job], dict[str, Any]]:
    """The statement and its parameters for up to `limit` jobs of `listing`, newest first,
    after skipping `offset` of them, all with an id below `before_id` if given."""
    cursor = before_id is not None
    if listing.conditions:
        statement = _statement(listing.key, listing.conditions, cursor)
    else:
        statement = _plain_statement(listing.key, cursor)
    parameters: dict[str, Any] = {
        "keys": list(dict.fromkeys(listing.values)),  # a value twice would list its jobs twice
        "statuses": list(dict.fromkeys(listing.statuses)),
        "scan_limit": offset + limit,
        "offset": offset,
        "limit": limit,
    }
    if cursor:
        parameters["before_id"] = before_id
    return statement, parameters


# For the rest of the transaction: see search_condition.
FORCE_CUSTOM_PLAN = text("SET LOCAL plan_cache_mode = force_custom_plan")


def is_job_id(search: str) -> bool:
    return search.isascii() and search.isdigit()


def _like_pattern(text: str) -> str:
    """'%text%', with LIKE's own characters in `text` taken literally (escape '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_condition(search: str) -> ColumnElement[bool] | None:
    """The jobs GET /jobs/?search=`search` lists: all digits, the job of that id; otherwise those
    whose command or one of whose tags contains it, ignoring case. None: no condition (a
    blank search). ValueError for a text no job can contain (control characters).

    Run a text search with a custom plan (FORCE_CUSTOM_PLAN): only the text itself tells
    PostgreSQL whether the trigram index (a rare text) or the newest jobs (a common one) are
    the cheaper read. On 100,000 jobs a generic plan, blind to it, read the trigram index
    for 'run.py' (every job) in 120 ms, where the custom plan read the newest jobs in 1 ms."""
    search = search.strip()
    if not search:
        return None
    if is_job_id(search):
        job_id = int(search)
        return J.id == job_id if 1 <= job_id <= MAX_JOB_ID else false()
    # job_search_text() joins command and tags with U+001F: no match may span two of them.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in search):
        raise ValueError("control characters (tabs, line breaks...) are not allowed")
    searched = func.job_search_text(J.command, J.tags, type_=Text)
    return searched.ilike(_like_pattern(search), escape="\\")
