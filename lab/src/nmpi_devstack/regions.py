"""Which regions of the address plan a lab runs: chosen at `up`, remembered in the state dir.

`nmpi-devstack up --regions castor,jusuf,witness` (or NMPI_DEVSTACK_REGIONS, which the flag
overrides) chooses the set; `up` writes it to <state>/regions, and every later command run
without a choice (`up`, `status`, `down`, `env`) uses what is written there. A new lab, or one
after `clean` (which removes the state directory), runs DEFAULT: the two sites.

A lab's regions keep the address plan's order, whatever order they were given in; the first is
the primary region, through which the shared services (Glance, Designate) are reached and
checked. Changing the set on a lab adds the new regions' services at that `up`, and removes a
dropped region altogether: its processes, instances, networks, volumes, databases and catalog
entries (refused while it has instances or volumes, unless `up --force`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from . import addresses as a
from .paths import Paths
from .supervisor import LabError

DEFAULT = ("castor", "jusuf")
ENV = "NMPI_DEVSTACK_REGIONS"

Names = tuple[str, ...]


def parse(text: str, source: str = "--regions") -> Names:
    """Region names from "castor,jusuf,witness" (commas or blanks), in the plan's order."""
    names = [n.strip() for n in text.replace(",", " ").split() if n.strip()]
    unknown = [n for n in names if n not in a.REGIONS]
    if unknown:
        raise LabError(
            f"{source}: unknown region {', '.join(repr(n) for n in unknown)}"
            f" (the address plan has {', '.join(a.REGIONS)})"
        )
    if not names:
        raise LabError(f"{source}: no region given (the address plan has {', '.join(a.REGIONS)})")
    return tuple(r for r in a.REGIONS if r in names)


def remembered(paths: Paths) -> Names | None:
    """The set the last `up` brought the lab to; None if none was written (a new lab)."""
    try:
        text = paths.regions_file.read_text()
    except FileNotFoundError:
        return None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return parse(" ".join(lines), str(paths.regions_file)) if lines else None


def remember(paths: Paths, names: Iterable[str]) -> None:
    paths.home.mkdir(parents=True, exist_ok=True)
    tmp = paths.regions_file.with_name(paths.regions_file.name + ".tmp")
    tmp.write_text(
        "# The lab's regions, written by `nmpi-devstack up` (change: up --regions ...)\n"
        + ",".join(names)
        + "\n"
    )
    tmp.replace(paths.regions_file)


def current(paths: Paths) -> Names:
    """The regions of the lab as it is: what `status`, `down` and `env` act on."""
    return remembered(paths) or DEFAULT


def chosen(paths: Paths, flag: str | None, environ: Mapping[str, str]) -> tuple[Names, str]:
    """The regions `up` brings the lab to, and where that choice came from."""
    if flag is not None and flag.strip():
        return parse(flag), "--regions"
    env = environ.get(ENV, "").strip()
    if env:
        return parse(env, ENV), ENV
    found = remembered(paths)
    if found:
        return found, f"remembered in {paths.regions_file}"
    return DEFAULT, "default"


def specs(names: Iterable[str]) -> tuple[a.Region, ...]:
    return tuple(a.REGIONS[n] for n in names)
