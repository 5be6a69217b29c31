"""Job state machine: which status may follow which.

submitted -> validated | mapped (confirmed by the site) -> running -> finished | error, and
any -> removed (users). A job handed out by GET /jobs/next stays `submitted` under a lease until
the site confirms it (see claims.py). Setting a job to the status it already has is always
accepted, so providers can repeat PUTs.
"""

from __future__ import annotations

from ..schemas.jobs import JobStatus as S

ALLOWED: dict[S, frozenset[S]] = {
    S.submitted: frozenset({S.validated, S.mapped, S.running, S.finished, S.error, S.removed}),
    S.validated: frozenset({S.mapped, S.running, S.finished, S.error, S.removed}),
    S.mapped: frozenset({S.running, S.finished, S.error, S.removed}),
    S.running: frozenset({S.finished, S.error, S.removed}),
    S.finished: frozenset({S.removed}),
    S.error: frozenset({S.removed}),
    S.removed: frozenset(),
}
TERMINAL = frozenset({S.finished, S.error})
# Statuses a provider may set; "submitted" and "removed" belong to users.
PROVIDER_SETTABLE = frozenset({S.validated, S.mapped, S.running, S.finished, S.error})
# Still waiting from the user's point of view: the site took the job but does not run it yet.
QUEUED = frozenset({S.submitted, S.validated, S.mapped})


def listed_statuses(asked: list[S]) -> list[str]:
    """The stored statuses a `status` filter matches: `submitted` means "in the queue", so it
    also matches jobs a site confirmed but does not run yet. The nmpi client's queued_jobs()
    asks for submitted + running; without this a job would vanish from it between the site's
    PUT validated and its PUT running."""
    statuses = {s.value for s in asked}
    if S.submitted in asked:
        statuses |= {s.value for s in QUEUED}
    return sorted(statuses)


class TransitionError(ValueError):
    pass


def check_transition(current: S, new: S) -> None:
    if new == current:
        return
    if new not in ALLOWED[current]:
        allowed = ", ".join(sorted(ALLOWED[current])) or "none"
        raise TransitionError(
            f"a {current.value} job cannot become {new.value} "
            f"(allowed from {current.value}: {allowed})"
        )
