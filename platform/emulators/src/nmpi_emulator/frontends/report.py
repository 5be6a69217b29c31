"""The report file a front-end leaves for the runner (README.md, "The report file").

The runner sets ``NMPI_EMULATOR_REPORT`` (where to write) and ``NMPI_EMULATOR_SEED`` (the job's
seed). Without ``NMPI_EMULATOR_REPORT`` (a user running the script locally) nothing is written.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

REPORT_ENV = "NMPI_EMULATOR_REPORT"
SEED_ENV = "NMPI_EMULATOR_SEED"
NEST_MAX_SEED = 2**31 - 1  # NEST's rng_seed range is 1 .. 2**31 - 1


def report_path() -> Path | None:
    """Where the runner wants the report, or None when run outside the emulator."""
    value = os.environ.get(REPORT_ENV, "").strip()
    return Path(value) if value else None


def job_seed() -> int:
    """The job's seed (a valid NEST seed); random when the runner gave none."""
    value = os.environ.get(SEED_ENV, "").strip()
    if not value:
        return secrets.randbelow(NEST_MAX_SEED) + 1
    try:
        seed = int(value)
    except ValueError as err:
        raise ValueError(f"{SEED_ENV} must be an integer, got {value!r}") from err
    # Fold any integer into NEST's range so that every job seed is usable and reproducible.
    return seed % NEST_MAX_SEED + 1 if not 1 <= seed <= NEST_MAX_SEED else seed


def simulator_versions() -> dict[str, str]:
    """Versions of the simulation stack, from the installed distributions' metadata."""
    versions: dict[str, str] = {}
    for label, dist in (("PyNN", "PyNN"), ("NEST", "nest-simulator"), ("neo", "neo")):
        try:
            versions[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[label] = "unknown"
    return versions


def build_report(
    platform: str, value: float, units: str, provenance: Mapping[str, object]
) -> dict[str, object]:
    """The report document; `provenance` goes after the simulator versions."""
    return {
        "platform": platform,
        "resource_usage": {"value": value, "units": units},
        "provenance": {"simulator": simulator_versions(), **provenance},
    }


def write_report(
    platform: str, value: float, units: str, provenance: Mapping[str, object]
) -> Path | None:
    """(Re)write the report atomically, so the runner never reads half a file."""
    path = report_path()
    if path is None:
        return None
    text = json.dumps(build_report(platform, value, units, provenance), indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
