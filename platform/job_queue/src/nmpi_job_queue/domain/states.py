"""Job state machine: which status may follow which.

submitted -> validated (claimed) -> running -> finished | error, and any -> removed (users).
Setting a job to the status it already has is always accepted, so providers can repeat PUTs.
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
