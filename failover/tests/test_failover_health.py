"""Per-site consecutive-failure tracking."""

from __future__ import annotations

import pytest
from nmpi_failover.health import HealthBook, SiteStatus
from nmpi_failover.model import SiteProbe

OK, FAIL = SiteProbe(ok=True, latency=0.02), SiteProbe(ok=False, error="timeout")


def feed(results: str, failures_to_down: int = 3) -> HealthBook:
    book = HealthBook.start(["castor", "jusuf"], failures_to_down)
    for t, result in enumerate(results):
        book = book.record({"castor": OK if result == "+" else FAIL, "jusuf": OK}, float(t))
    return book


@pytest.mark.parametrize(
    ("results", "status", "failures"),
    [
        pytest.param("", SiteStatus.UNKNOWN, 0, id="never-probed"),
        pytest.param("+", SiteStatus.UP, 0, id="one-success"),
        pytest.param("-", SiteStatus.SUSPECT, 1, id="first-failure"),
        pytest.param("+--", SiteStatus.SUSPECT, 2, id="below-threshold"),
        pytest.param("+---", SiteStatus.DOWN, 3, id="at-threshold"),
        pytest.param("---", SiteStatus.DOWN, 3, id="down-from-start"),
        pytest.param("+-------", SiteStatus.DOWN, 7, id="stays-down"),
        pytest.param("+-----+", SiteStatus.UP, 0, id="one-success-resets"),
        pytest.param("+--+--", SiteStatus.SUSPECT, 2, id="interrupted-failures-do-not-add"),
    ],
)
def test_status_after(results: str, status: SiteStatus, failures: int) -> None:
    book = feed(results)
    assert book.status("castor") is status
    assert book.failures("castor") == failures


def test_threshold_of_one_means_first_failure_is_down() -> None:
    assert feed("+-", failures_to_down=1).status("castor") is SiteStatus.DOWN


def test_sites_are_tracked_independently() -> None:
    book = feed("+---")
    assert book.status("jusuf") is SiteStatus.UP
    assert book.failures("jusuf") == 0


def test_site_missing_from_a_round_keeps_its_count() -> None:
    book = feed("+--").record({"jusuf": OK}, 10.0)
    assert book.failures("castor") == 2
    assert book.observed_at == 10.0


def test_books_are_immutable_values() -> None:
    before = feed("+-")
    after = before.record({"castor": FAIL}, 5.0)
    assert before.failures("castor") == 1
    assert after.failures("castor") == 2


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HealthBook.start(["castor"], 0)
