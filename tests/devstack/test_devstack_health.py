"""Daemon health from the service lists (nmpi_devstack.health): a daemon just started counts as
up only once its record was updated after its start.

No services: a stand-in for the admin connection returns service records shaped like
openstacksdk's (state, status, updated_at as the APIs give it: ISO 8601, UTC, no zone).
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from nmpi_devstack.health import ServiceView

STARTED = datetime(2026, 12, 5, 11, 38, 20, 500000, tzinfo=UTC).timestamp()


def nova(binary: str, updated_at: str | None, state: str = "up") -> Any:
    return SimpleNamespace(binary=binary, state=state, status="enabled", updated_at=updated_at)


def view(*records: Any) -> ServiceView:
    conn = SimpleNamespace(compute=SimpleNamespace(services=lambda: list(records)))
    return ServiceView(lambda region: conn)  # type: ignore[arg-type]


def test_up_without_since_is_enough() -> None:
    assert (
        view(nova("nova-compute", "2026-12-05T11:38:10.000000")).state(
            "castor", "compute", "nova-compute"
        )
        is None
    )


def test_record_older_than_the_start_is_not_up_yet() -> None:
    reason = view(nova("nova-compute", "2026-12-05T11:38:10.000000")).state(
        "castor", "compute", "nova-compute", since=STARTED
    )
    assert reason == "nova-compute has not reported in the compute service list since its start"


def test_record_updated_after_the_start_is_up() -> None:
    assert (
        view(nova("nova-compute", "2026-12-05T11:38:25.000000")).state(
            "castor", "compute", "nova-compute", since=STARTED
        )
        is None
    )


def test_record_of_the_start_second_is_up() -> None:
    """The database may keep whole seconds: the start's own second counts."""
    assert (
        view(nova("nova-compute", "2026-12-05T11:38:20")).state(
            "castor", "compute", "nova-compute", since=STARTED
        )
        is None
    )


def test_record_without_a_time_is_not_up_after_a_start() -> None:
    assert (
        view(nova("nova-compute", None)).state("castor", "compute", "nova-compute", since=STARTED)
        is not None
    )


def test_down_or_missing_says_so() -> None:
    lab = view(nova("nova-compute", "2026-12-05T11:38:25", state="down"))
    assert lab.state("castor", "compute", "nova-compute") == (
        "nova-compute is down in the compute service list"
    )
    assert lab.state("castor", "compute", "nova-conductor") == (
        "nova-conductor is not registered in the compute service list"
    )


def test_pending_applies_each_key_its_own_start() -> None:
    lab = view(
        nova("nova-compute", "2026-12-05T11:38:10"), nova("nova-conductor", "2026-12-05T11:38:10")
    )
    compute = ("castor", "compute", "nova-compute")
    conductor = ("castor", "compute", "nova-conductor")
    pending = lab.pending([compute, conductor], since={compute: STARTED})
    assert list(pending) == [compute]
