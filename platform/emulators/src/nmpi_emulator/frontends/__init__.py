"""What users' scripts import instead of the hardware's PyNN back-ends (see ../../README.md).

`spinnaker` stands in for ``pyNN.spiNNaker``, `brainscales2` for
``pynn_brainscales.brainscales2``; both run on pyNN.nest. This package imports neither PyNN nor
NEST itself, so the runner can use `report` without loading a simulator.
"""

from __future__ import annotations

import math
import operator
import os
import warnings
from typing import SupportsIndex


def cell_type_name(cellclass: object) -> str:
    """The PyNN name of a cell type given as a class (old style) or an instance."""
    cls = cellclass if isinstance(cellclass, type) else type(cellclass)
    return cls.__name__


def population_size(size: object) -> int:
    """Number of cells of a Population's `size` argument (an int or a shape tuple)."""
    if isinstance(size, tuple):
        return math.prod(int(n) for n in size)
    if isinstance(size, SupportsIndex):  # int, numpy integers
        return operator.index(size)
    raise TypeError(f"a population size must be an integer or a tuple of integers, not {size!r}")


def quiet_simulator() -> None:
    """Keep pyNN.nest's and NEST's internal chatter out of the job's log (call before import).

    A hardware site's log shows the user's output, not how the emulation is built: NEST's
    banner, PyNN's missing nest-config (its optional extensions) and NEST deprecations of calls
    that PyNN, not the script, makes.
    """
    os.environ.setdefault("PYNEST_QUIET", "1")
    for message in (
        r"Cannot find nest-config",
        r"\s*SetStatus\(\) is deprecated",
        r"\s*GetStatus\(\) is deprecated",
        r"\s*Provided for backward compatibility only",
    ):
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
