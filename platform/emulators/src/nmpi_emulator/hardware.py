"""The rules and charges of the emulated systems, as data and pure functions.

The front-ends (``frontends/``) call these checks before anything runs on NEST, and the runner and
tests use the same numbers, so a rule lives in exactly one place. Each refusal raises
:class:`HardwareConstraintError` whose message states the rule and what the script asked for.
Sources: /work/shared/hardware-facts.md (sPyNNaker 7.4.1, pynn-brainscales).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


class HardwareConstraintError(ValueError):
    """The script asks for something the emulated hardware cannot do; the message says what."""


# --------------------------------------------------------------------------------------------
# SpiNNaker (sPyNNaker)
# --------------------------------------------------------------------------------------------

SPINNAKER_PLATFORM = "SpiNNaker"
SPINNAKER_UNITS = "core-hours"
SPINNAKER_CELL_TYPES: frozenset[str] = frozenset(
    {
        "IF_curr_exp",
        "IF_cond_exp",
        "IF_curr_alpha",
        "IF_curr_delta",
        "Izhikevich",
        "SpikeSourcePoisson",
        "SpikeSourceArray",
    }
)
SPINNAKER_TIMESTEPS_MS: tuple[float, ...] = (1.0, 0.1)
SPINNAKER_DEFAULT_NEURONS_PER_CORE = 256
SPINNAKER_CORES_PER_CHIP = 16  # of 18: one monitor core, one spare
SPINNAKER_CHIPS_PER_BOARD = 48
SPINNAKER_CORES_PER_BOARD = SPINNAKER_CORES_PER_CHIP * SPINNAKER_CHIPS_PER_BOARD


def check_spinnaker_cell_type(name: str) -> None:
    """Refuse a cell type sPyNNaker has no implementation of."""
    if name not in SPINNAKER_CELL_TYPES:
        raise HardwareConstraintError(
            f"SpiNNaker does not support cell type {name} "
            f"(supported: {', '.join(sorted(SPINNAKER_CELL_TYPES))})"
        )


def check_spinnaker_timestep(timestep_ms: float) -> None:
    """Only the two machine time steps sPyNNaker offers are accepted."""
    if not any(math.isclose(timestep_ms, ok, rel_tol=1e-9) for ok in SPINNAKER_TIMESTEPS_MS):
        allowed = " or ".join(f"{t:g}" for t in SPINNAKER_TIMESTEPS_MS)
        raise HardwareConstraintError(
            f"SpiNNaker supports a timestep of {allowed} ms only (the script asked for "
            f"{timestep_ms:g} ms)"
        )


def check_spinnaker_neurons_per_core(cell_type: str, n: int) -> None:
    """A core holds at most 256 neurons of one type (its DTCM limits it), at least one."""
    if (
        isinstance(n, bool)
        or not isinstance(n, int)
        or not (1 <= n <= SPINNAKER_DEFAULT_NEURONS_PER_CORE)
    ):
        raise HardwareConstraintError(
            f"SpiNNaker neurons per core must be an integer from 1 to "
            f"{SPINNAKER_DEFAULT_NEURONS_PER_CORE} (the script asked for {n!r} for {cell_type})"
        )


def spinnaker_cores(
    populations: Iterable[tuple[str, int]], neurons_per_core: Mapping[str, int] | None = None
) -> int:
    """Cores used: per population (spike sources too), ceil(size / neurons per core of its type).

    `populations` holds (cell type name, size) pairs; populations are never packed together.
    """
    per_core = neurons_per_core or {}
    total = 0
    for cell_type, size in populations:
        n = per_core.get(cell_type, SPINNAKER_DEFAULT_NEURONS_PER_CORE)
        total += math.ceil(size / n)
    return total


def spinnaker_boards(cores: int) -> int:
    """Boards needed for `cores` model cores (at least one: a job always gets a board)."""
    return max(1, math.ceil(cores / SPINNAKER_CORES_PER_BOARD))


def spinnaker_wall_time_s(biological_time_ms: float, time_scale_factor: float = 1.0) -> float:
    """SpiNNaker runs in real time, slowed down by `time_scale_factor`."""
    return biological_time_ms / 1000.0 * time_scale_factor


def spinnaker_core_hours(
    cores: int, biological_time_ms: float, time_scale_factor: float = 1.0
) -> float:
    """Charge: cores held for the wall-clock run time."""
    return cores * spinnaker_wall_time_s(biological_time_ms, time_scale_factor) / 3600.0


# --------------------------------------------------------------------------------------------
# BrainScaleS-2 (pynn-brainscales)
# --------------------------------------------------------------------------------------------

BRAINSCALES2_PLATFORM = "BrainScaleS-2"
BRAINSCALES2_UNITS = "chip-hours"
BRAINSCALES2_NEURON_TYPES: frozenset[str] = frozenset({"HXNeuron"})
BRAINSCALES2_SOURCE_TYPES: frozenset[str] = frozenset(
    {"SpikeSourceArray", "SpikeSourcePoisson", "SpikeSourcePoissonOnChip"}
)
BRAINSCALES2_CELL_TYPES = BRAINSCALES2_NEURON_TYPES | BRAINSCALES2_SOURCE_TYPES
BRAINSCALES2_NEURONS_PER_CHIP = 512
BRAINSCALES2_CHIPS = 1  # a job gets one chip
BRAINSCALES2_WEIGHT_MAX = 63  # 6-bit synapse weights
BRAINSCALES2_SPEEDUP = 1000.0
BRAINSCALES2_RUN_OVERHEAD_S = 0.5  # configuration and read-out per run() call


def check_brainscales2_cell_type(name: str) -> None:
    """Only the chip's neuron circuit and the external/on-chip spike sources exist."""
    if name not in BRAINSCALES2_CELL_TYPES:
        raise HardwareConstraintError(
            f"BrainScaleS-2 does not support cell type {name} "
            f"(supported: {', '.join(sorted(BRAINSCALES2_CELL_TYPES))})"
        )


def check_brainscales2_neurons(total_neurons: int) -> None:
    """All neurons of a job share one chip of 512 neuron circuits."""
    if total_neurons > BRAINSCALES2_NEURONS_PER_CHIP:
        raise HardwareConstraintError(
            f"BrainScaleS-2 has {BRAINSCALES2_NEURONS_PER_CHIP} neurons on its one chip "
            f"(the script asks for {total_neurons} HXNeuron neurons)"
        )


def check_brainscales2_weights(weights: Iterable[float], projection: str) -> None:
    """Synapse weights are 6-bit integers: 0..63, in hardware units."""
    for w in weights:
        if not (float(w).is_integer() and 0 <= w <= BRAINSCALES2_WEIGHT_MAX):
            raise HardwareConstraintError(
                f"BrainScaleS-2 weights are integers from 0 to {BRAINSCALES2_WEIGHT_MAX} "
                f"(projection {projection} asks for weight {float(w):g})"
            )


def brainscales2_hardware_time_s(biological_time_ms: float, runs: int) -> float:
    """Time the chip is held: the accelerated run plus a fixed overhead per run() call."""
    return biological_time_ms / 1000.0 / BRAINSCALES2_SPEEDUP + BRAINSCALES2_RUN_OVERHEAD_S * runs


def brainscales2_chip_hours(biological_time_ms: float, runs: int) -> float:
    """Charge: the chip held for its hardware time."""
    return BRAINSCALES2_CHIPS * brainscales2_hardware_time_s(biological_time_ms, runs) / 3600.0
