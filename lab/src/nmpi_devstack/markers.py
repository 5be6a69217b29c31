"""Markers of one-time steps (schema syncs, bootstraps): what makes a second `up` fast.

A marker holds a value (usually the version of the package that did the step): a step runs
again when its value changes, e.g. after the venv's nova is upgraded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .paths import Paths


class Markers:
    def __init__(self, paths: Paths, versions: Mapping[str, str]) -> None:
        self.dir = paths.markers
        self.versions = versions

    def get(self, key: str) -> str | None:
        try:
            return (self.dir / key).read_text().strip()
        except OSError:
            return None

    def set(self, key: str, value: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / key).write_text(value + "\n")

    def once(
        self,
        key: str,
        step: Callable[[], object],
        *,
        version_of: str | None = None,
        value: str | None = None,
    ) -> bool:
        """Run `step` unless it already ran for this value; True if it ran."""
        want = value or (self.versions.get(version_of, "?") if version_of else "done")
        if self.get(key) == want:
            return False
        step()
        self.set(key, want)
        return True
