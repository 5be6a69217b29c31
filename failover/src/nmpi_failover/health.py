"""Per-site health from consecutive probe results.

A site is DOWN only after `failures_to_down` consecutive failed probes and a single success
makes it UP again, so a blip shorter than the threshold never moves anything. Until a site
has been probed it is UNKNOWN; UNKNOWN and SUSPECT sites are neither switch targets nor
reasons to leave. The book counts only ok or not; what the latest probe saw (an HTTP 503
from a web tier waiting for its database, or no answer at all) is in the round's
`Observation.probes`, which `decide` reads beside the book.
The book is immutable; each round yields a new one, which keeps `decide` a pure function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from .model import SiteProbe


class SiteStatus(StrEnum):
    UNKNOWN = "unknown"  # never probed yet
    UP = "up"  # the last probe succeeded
    SUSPECT = "suspect"  # failing, but fewer than failures_to_down times in a row
    DOWN = "down"  # failures_to_down or more consecutive failures


@dataclass(frozen=True)
class SiteHealth:
    consecutive_failures: int = 0
    last_ok: bool | None = None  # None: never probed


@dataclass(frozen=True)
class HealthBook:
    failures_to_down: int
    sites: Mapping[str, SiteHealth] = field(default_factory=dict)
    # taken_at of the last observation folded in; lets `decide` check it sees matching state.
    observed_at: float | None = None

    @classmethod
    def start(cls, sites: Iterable[str], failures_to_down: int) -> HealthBook:
        if failures_to_down < 1:
            raise ValueError("failures_to_down must be at least 1")
        return cls(failures_to_down, {name: SiteHealth() for name in sites})

    def record(self, probes: Mapping[str, SiteProbe], observed_at: float) -> HealthBook:
        """Fold one round's probes in; a site without a probe this round keeps its count."""
        sites = dict(self.sites)
        for name, probe in probes.items():
            before = sites.get(name, SiteHealth())
            if probe.ok:
                sites[name] = SiteHealth(consecutive_failures=0, last_ok=True)
            else:
                sites[name] = SiteHealth(before.consecutive_failures + 1, last_ok=False)
        return replace(self, sites=sites, observed_at=observed_at)

    def status(self, site: str) -> SiteStatus:
        health = self.sites.get(site, SiteHealth())
        if health.consecutive_failures >= self.failures_to_down:
            return SiteStatus.DOWN
        if health.last_ok is None:
            return SiteStatus.UNKNOWN
        if health.last_ok:
            return SiteStatus.UP
        return SiteStatus.SUSPECT

    def failures(self, site: str) -> int:
        return self.sites.get(site, SiteHealth()).consecutive_failures
