"""``pynn_brainscales.brainscales2`` emulated on NEST (``import pynn_brainscales.brainscales2``).

BrainScaleS-2's rules (``nmpi_emulator.hardware``): cell types ``HXNeuron`` plus
``SpikeSourceArray``, ``SpikeSourcePoisson``, ``SpikeSourcePoissonOnChip``; at most 512 HXNeuron
neurons (one chip); weights are integers 0..63 in hardware units. The chip runs 1000x faster
than biology: a ``run()`` call lasts biological time / 1000 + 0.5 s (configuration, read-out),
slept out if NEST is faster, and the job is charged that time in chip-hours.

HXNeuron: the chip's AdEx circuit, configured in hardware units, emulated by PyNN's
``EIF_cond_exp_isfa_ista`` (NEST ``aeif_cond_exp``). Accepted parameters (hardware name, range,
default -> biological value, linear in the hardware value; a bias current sets a rate, so a time
constant is inverse to its bias):

=====================================  =========  =======  =====================================
hardware parameter                     range      default  biological value
=====================================  =========  =======  =====================================
leak_v_leak                            0..1022    550      v_rest = -120 + 0.1 * hw mV (-65)
reset_v_reset                          0..1022    500      v_reset = -120 + 0.1 * hw mV (-70)
threshold_v_threshold                  0..1022    700      spike threshold -120 + 0.1 * hw mV (-50)
threshold_enable                       bool       True     False: the neuron never spikes
leak_i_bias                            1..1022    200      g_leak = 0.1 * hw nS (20 nS)
membrane_capacitance_capacitance       0..63      63       cm = 0.004 * (hw + 1) nF (0.256 nF)
refractory_period_refractory_time      0..255     95       tau_refrac = 0.02 * hw ms (1.9 ms)
excitatory_input_i_bias_tau            1..1022    200      tau_syn_E = 1000 / hw ms (5 ms)
inhibitory_input_i_bias_tau            1..1022    200      tau_syn_I = 1000 / hw ms (5 ms)
excitatory_input_enable                bool       True     False: e_rev_E = v_rest (no effect)
inhibitory_input_enable                bool       True     False: e_rev_I = v_rest (no effect)
exponential_enable                     bool       False    False: delta_T = 0 (plain LIF)
exponential_v_exp                      0..1022    650      v_thresh (V_T) = -120 + 0.1 * hw mV
exponential_i_bias                     1..1022    300      delta_T = 600 / hw mV (2 mV)
adaptation_enable                      bool       False    False: a = b = 0
adaptation_i_bias_tau                  1..1022    100      tau_w = 14400 / hw ms (144 ms)
adaptation_i_bias_a                    0..1022    100      a = 0.04 * hw nS (4 nS)
adaptation_i_bias_b                    0..1022    80       b = 0.001 * hw nA (0.08 nA)
adaptation_invert_a, _invert_b         bool       False    True: a (b) negated
constant_current_enable                bool       False    False: i_offset = 0
constant_current_i_offset              0..1022    0        i_offset = 0.001 * hw nA
=====================================  =========  =======  =====================================

Reversal potentials are fixed (e_rev_E 0 mV, e_rev_I -80 mV); the membrane starts at v_rest.
Accepted without effect (circuit details NEST has no counterpart for): leak_enable_division,
leak_enable_multiplication, reset_i_bias, reset_enable_multiplication, adaptation_v_ref,
adaptation_enable_pulse, excitatory_input_i_bias_gm, inhibitory_input_i_bias_gm,
refractory_period_input_clock, refractory_period_reset_holdoff, event_routing_analog_output,
event_routing_enable_digital, readout_enable_amplifier, readout_source. Any other name is
refused. Values may be per-neuron arrays.

Weights: hardware units 0..63, conductance = weight * 0.001 uS (1 nS per unit); inhibitory
projections take positive weights, as on the chip. ``Projection.get("weight")`` shows the
conductance in uS. ``SpikeSourcePoissonOnChip(rate, seed)`` is a NEST Poisson source (`seed`
ignored: NEST's seed is the job's, ``NMPI_EMULATOR_SEED``).
"""

from __future__ import annotations

import atexit
import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from nmpi_emulator import hardware
from nmpi_emulator.frontends import (
    cell_type_name,
    population_size,
    quiet_simulator,
    report,
)
from nmpi_emulator.frontends import spikes as _spikes

quiet_simulator()

import numpy as np  # noqa: E402
import pyNN.nest as _nest  # type: ignore[import-untyped]  # noqa: E402
from lazyarray import larray  # type: ignore[import-untyped]  # noqa: E402
from pyNN.nest import (  # noqa: E402
    AllToAllConnector,
    ArrayConnector,
    Assembly,
    CloneConnector,
    DistanceDependentProbabilityConnector,
    FixedNumberPostConnector,
    FixedNumberPreConnector,
    FixedProbabilityConnector,
    FixedTotalNumberConnector,
    FromFileConnector,
    FromListConnector,
    IndexBasedProbabilityConnector,
    NumpyRNG,
    OneToOneConnector,
    PopulationView,
    RandomDistribution,
    SpikeSourceArray,
    StaticSynapse,
    get_current_time,
    get_time_step,
    reset,
)

# Each neo file written through PyNN gets a <file>.spikes.json beside it (frontends.spikes).
_spikes.install()

__all__ = [
    "AllToAllConnector",
    "ArrayConnector",
    "Assembly",
    "CloneConnector",
    "DistanceDependentProbabilityConnector",
    "FixedNumberPostConnector",
    "FixedNumberPreConnector",
    "FixedProbabilityConnector",
    "FixedTotalNumberConnector",
    "FromFileConnector",
    "FromListConnector",
    "HXNeuron",
    "IndexBasedProbabilityConnector",
    "NumpyRNG",
    "OneToOneConnector",
    "Population",
    "PopulationView",
    "Projection",
    "RandomDistribution",
    "SpikeSourceArray",
    "SpikeSourcePoisson",
    "SpikeSourcePoissonOnChip",
    "StaticSynapse",
    "cell_types",
    "cells",
    "end",
    "get_current_time",
    "get_time_step",
    "logger",
    "reset",
    "run",
    "setup",
    "standardmodels",
]

TIMESTEP_MS = 0.1  # NEST's step for the emulation; the chip itself runs in continuous time
WEIGHT_UNIT_US = 0.001  # conductance of one hardware weight unit


def _volt(hw: np.ndarray) -> np.ndarray:
    millivolts: np.ndarray = -120.0 + 0.1 * hw
    return millivolts


# name -> (low, high, default); booleans have range (0, 1).
_ANALOG = (0, 1022)
_BIAS = (1, 1022)  # a zero bias would mean an infinite time constant
HX_PARAMETERS: dict[str, tuple[int, int, float]] = {
    "leak_v_leak": (*_ANALOG, 550),
    "reset_v_reset": (*_ANALOG, 500),
    "threshold_v_threshold": (*_ANALOG, 700),
    "threshold_enable": (0, 1, True),
    "leak_i_bias": (*_BIAS, 200),
    "membrane_capacitance_capacitance": (0, 63, 63),
    "refractory_period_refractory_time": (0, 255, 95),
    "excitatory_input_i_bias_tau": (*_BIAS, 200),
    "inhibitory_input_i_bias_tau": (*_BIAS, 200),
    "excitatory_input_enable": (0, 1, True),
    "inhibitory_input_enable": (0, 1, True),
    "exponential_enable": (0, 1, False),
    "exponential_v_exp": (*_ANALOG, 650),
    "exponential_i_bias": (*_BIAS, 300),
    "adaptation_enable": (0, 1, False),
    "adaptation_i_bias_tau": (*_BIAS, 100),
    "adaptation_i_bias_a": (*_ANALOG, 100),
    "adaptation_i_bias_b": (*_ANALOG, 80),
    "adaptation_invert_a": (0, 1, False),
    "adaptation_invert_b": (0, 1, False),
    "constant_current_enable": (0, 1, False),
    "constant_current_i_offset": (*_ANALOG, 0),
}
HX_IGNORED_PARAMETERS: frozenset[str] = frozenset(
    {
        "leak_enable_division",
        "leak_enable_multiplication",
        "reset_i_bias",
        "reset_enable_multiplication",
        "adaptation_v_ref",
        "adaptation_enable_pulse",
        "excitatory_input_i_bias_gm",
        "inhibitory_input_i_bias_gm",
        "refractory_period_input_clock",
        "refractory_period_reset_holdoff",
        "event_routing_analog_output",
        "event_routing_enable_digital",
        "readout_enable_amplifier",
        "readout_source",
    }
)
NEVER_MV = 1.0e4  # threshold of a neuron whose threshold comparator is off


def _simplify(value: np.ndarray) -> float | np.ndarray:
    return float(value) if value.ndim == 0 else value


def hx_to_biological(parameters: Mapping[str, Any]) -> dict[str, float | np.ndarray]:
    """EIF_cond_exp_isfa_ista parameters for HXNeuron hardware `parameters` (module docstring)."""
    unknown = sorted(set(parameters) - set(HX_PARAMETERS) - HX_IGNORED_PARAMETERS)
    if unknown:
        raise hardware.HardwareConstraintError(
            f"HXNeuron has no parameter {', '.join(unknown)} (emulated parameters: "
            f"{', '.join(sorted(set(HX_PARAMETERS) | HX_IGNORED_PARAMETERS))})"
        )
    hw: dict[str, np.ndarray] = {}
    for name, (low, high, default) in HX_PARAMETERS.items():
        value = np.asarray(parameters.get(name, default), dtype=float)
        if not np.all((value >= low) & (value <= high) & (value == np.round(value))):
            bad = value[(value < low) | (value > high) | (value != np.round(value))]
            raise hardware.HardwareConstraintError(
                f"HXNeuron parameter {name} must be an integer from {low} to {high} "
                f"(the script asked for {np.ravel(bad)[0]:g})"
            )
        hw[name] = value

    def on(name: str) -> np.ndarray:
        return np.asarray(hw[name] != 0)

    v_rest = _volt(hw["leak_v_leak"])
    threshold = np.where(on("threshold_enable"), _volt(hw["threshold_v_threshold"]), NEVER_MV)
    exponential = on("exponential_enable") & on("threshold_enable")
    # Without the exponential term NEST's aeif model spikes at v_thresh (V_th), as a LIF would.
    v_thresh = np.where(exponential, _volt(hw["exponential_v_exp"]), threshold)
    if np.any(v_thresh > threshold):
        raise hardware.HardwareConstraintError(
            "HXNeuron exponential_v_exp must not be above threshold_v_threshold"
        )
    cm = 0.004 * (hw["membrane_capacitance_capacitance"] + 1)
    g_leak_us = 0.0001 * hw["leak_i_bias"]
    adaptation = on("adaptation_enable")
    a = np.where(adaptation, 0.04 * hw["adaptation_i_bias_a"], 0.0)
    b = np.where(adaptation, 0.001 * hw["adaptation_i_bias_b"], 0.0)
    bio: dict[str, np.ndarray] = {
        "v_rest": v_rest,
        "v_reset": _volt(hw["reset_v_reset"]),
        "v_spike": threshold,
        "v_thresh": v_thresh,
        "cm": cm,
        "tau_m": cm / g_leak_us,
        "tau_refrac": 0.02 * hw["refractory_period_refractory_time"],
        "tau_syn_E": 1000.0 / hw["excitatory_input_i_bias_tau"],
        "tau_syn_I": 1000.0 / hw["inhibitory_input_i_bias_tau"],
        "e_rev_E": np.where(on("excitatory_input_enable"), 0.0, v_rest),
        "e_rev_I": np.where(on("inhibitory_input_enable"), -80.0, v_rest),
        "delta_T": np.where(exponential, 600.0 / hw["exponential_i_bias"], 0.0),
        "tau_w": 14400.0 / hw["adaptation_i_bias_tau"],
        "a": np.where(on("adaptation_invert_a"), -a, a),
        "b": np.where(on("adaptation_invert_b"), -b, b),
        "i_offset": np.where(
            on("constant_current_enable"), 0.001 * hw["constant_current_i_offset"], 0.0
        ),
    }
    return {name: _simplify(value) for name, value in bio.items()}


class HXNeuron(_nest.EIF_cond_exp_isfa_ista):  # type: ignore[misc]
    """The chip's AdEx neuron circuit, configured in hardware units (see the module docstring)."""

    def __init__(self, **parameters: Any) -> None:
        bio = hx_to_biological(parameters)
        super().__init__(**bio)
        # The membrane starts at its leak potential, as on the chip after configuration.
        self.default_initial_values = {"v": bio["v_rest"], "w": 0.0}


class SpikeSourcePoisson(_nest.SpikeSourcePoisson):  # type: ignore[misc]
    """Poisson spike trains played into the chip from the host."""


class SpikeSourcePoissonOnChip(_nest.SpikeSourcePoisson):  # type: ignore[misc]
    """The chip's on-chip Poisson generators (`seed` ignored: NEST draws with the job's seed)."""

    def __init__(self, rate: Any = 1.0, seed: Any = None, **parameters: Any) -> None:
        super().__init__(rate=rate, **parameters)


cell_types = cells = SimpleNamespace(
    HXNeuron=HXNeuron,
    SpikeSourceArray=SpikeSourceArray,
    SpikeSourcePoisson=SpikeSourcePoisson,
    SpikeSourcePoissonOnChip=SpikeSourcePoissonOnChip,
)
standardmodels = SimpleNamespace(
    cells=cell_types, synapses=SimpleNamespace(StaticSynapse=StaticSynapse)
)


class _LogLevel(enum.IntEnum):
    TRACE = 5
    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARN = logging.WARNING
    ERROR = logging.ERROR
    FATAL = logging.CRITICAL


def _default_config(level: int = logging.WARNING, **_: Any) -> None:
    logging.basicConfig(level=int(level))


def _get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


# pynn_brainscales' demos configure and get loggers through `pynn.logger`.
logger = SimpleNamespace(LogLevel=_LogLevel, default_config=_default_config, get=_get_logger)


@dataclass
class _State:
    """What the report needs, accumulated over the script's life."""

    set_up: bool = False
    seed: int = 0
    neurons: int = 0
    runs: int = 0
    biological_time_ms: float = 0.0
    wall_time_s: float = 0.0


_state = _State()


def setup(timestep: float = TIMESTEP_MS, **extra_params: Any) -> int:
    """Set up NEST with the job's seed; the chip's own keywords (calibrations...) are ignored."""
    seed = int(extra_params.get("rng_seed") or report.job_seed())
    np.random.seed(seed % 2**32)
    rank: int = _nest.setup(
        timestep=timestep,
        min_delay=extra_params.get("min_delay", "auto"),
        rng_seed=seed,
        verbosity=extra_params.get("verbosity", "error"),
    )
    _state.set_up = True
    _state.seed = seed
    _state.neurons = 0
    _state.runs = 0
    _state.biological_time_ms = 0.0
    _state.wall_time_s = 0.0
    return rank


def _accelerated(simtime_ms: float, simulate: Any) -> float:
    """Run, lasting as long as the chip would (bio / 1000 + overhead), not biological time."""
    start = time.monotonic()
    result = float(simulate())
    target = hardware.brainscales2_hardware_time_s(simtime_ms, runs=1)
    remaining = target - (time.monotonic() - start)
    if remaining > 0:
        time.sleep(remaining)
    _state.runs += 1
    _state.biological_time_ms += simtime_ms
    _state.wall_time_s += time.monotonic() - start
    return result


def run(simtime: float, callbacks: Any = None) -> float:
    """Advance the emulated chip by `simtime` ms of biological time."""
    return _accelerated(float(simtime), lambda: _nest.run(simtime, callbacks))


def run_until(time_point: float, callbacks: Any = None) -> float:
    """Advance the emulated chip until `time_point` ms of biological time."""
    biological = max(0.0, float(time_point) - float(_nest.get_current_time()))
    return _accelerated(biological, lambda: _nest.run_until(time_point, callbacks))


def end() -> None:
    """Write pending files (pyNN.nest) and the report."""
    _nest.end()
    write_report()


def write_report() -> None:
    """(Re)write the report file, if the runner asked for one and the script called setup()."""
    if not _state.set_up:
        return
    report.write_report(
        hardware.BRAINSCALES2_PLATFORM,
        hardware.brainscales2_chip_hours(_state.biological_time_ms, _state.runs),
        hardware.BRAINSCALES2_UNITS,
        {
            "seed": _state.seed,
            "timestep_ms": float(_nest.get_time_step()),
            "biological_time_ms": _state.biological_time_ms,
            "hardware_time_s": hardware.brainscales2_hardware_time_s(
                _state.biological_time_ms, _state.runs
            ),
            "wall_time_s": round(_state.wall_time_s, 3),
            "runs": _state.runs,
            "neurons": _state.neurons,
            "chips": hardware.BRAINSCALES2_CHIPS,
        },
    )


atexit.register(write_report)


class Population(_nest.Population):  # type: ignore[misc]
    """pyNN.nest's Population, refusing cell types the chip lacks and more than 512 neurons."""

    def __init__(
        self,
        size: Any,
        cellclass: Any,
        cellparams: Any = None,
        structure: Any = None,
        initial_values: Any = None,
        label: str | None = None,
    ) -> None:
        name = cell_type_name(cellclass)
        hardware.check_brainscales2_cell_type(name)
        n = population_size(size)
        if name in hardware.BRAINSCALES2_NEURON_TYPES:
            hardware.check_brainscales2_neurons(_state.neurons + n)
        super().__init__(size, cellclass, cellparams, structure, initial_values or {}, label)
        if name in hardware.BRAINSCALES2_NEURON_TYPES:
            _state.neurons += n


def _check_hardware_weights(native_ns: Any, projection: str) -> None:
    # pyNN.nest hands weights over in nS (uS * 1000): the script's number is native / 1000.
    hardware.check_brainscales2_weights(
        np.ravel(np.asarray(native_ns, dtype=float)) / 1000.0, projection
    )


class Projection(_nest.Projection):  # type: ignore[misc]
    """pyNN.nest's Projection with 6-bit hardware weights (0..63, 1 unit = 1 nS)."""

    def __init__(
        self,
        presynaptic_population: Any,
        postsynaptic_population: Any,
        connector: Any,
        synapse_type: Any = None,
        source: Any = None,
        receptor_type: Any = None,
        space: Any = None,
        label: str | None = None,
    ) -> None:
        self._hw_name = label or (f"{presynaptic_population.label}→{postsynaptic_population.label}")
        # Refuse a fixed weight here, before pyNN's own sign check words it differently.
        # (A ParameterSpace iterates over values, not names: membership needs keys().)
        keys = synapse_type.parameter_space.keys() if synapse_type is not None else ()
        if "weight" in keys:
            base = synapse_type.parameter_space["weight"].base_value
            if isinstance(base, int | float | np.ndarray):
                hardware.check_brainscales2_weights(np.ravel(base), self._hw_name)
        super().__init__(
            presynaptic_population,
            postsynaptic_population,
            connector,
            synapse_type,
            source,
            receptor_type,
            _nest.Space() if space is None else space,
            label,
        )

    def _convergent_connect(
        self,
        presynaptic_indices: Any,
        postsynaptic_index: Any,
        location_selector: Any = None,
        **connection_parameters: Any,
    ) -> None:
        if "weight" in connection_parameters:
            weight = connection_parameters["weight"]
            _check_hardware_weights(weight, self._hw_name)
            connection_parameters["weight"] = np.asarray(weight, dtype=float) * WEIGHT_UNIT_US
            if connection_parameters["weight"].ndim == 0:
                connection_parameters["weight"] = float(connection_parameters["weight"])
        super()._convergent_connect(
            presynaptic_indices, postsynaptic_index, location_selector, **connection_parameters
        )

    def _set_attributes(self, parameter_space: Any) -> None:
        # Projection.set(weight=...) takes hardware units too; evaluate once so that a random
        # distribution is drawn once, for the check and for NEST alike.
        if "weight" in parameter_space.keys():  # noqa: SIM118
            weight = np.asarray(parameter_space["weight"].evaluate(simplify=True), dtype=float)
            _check_hardware_weights(weight, self._hw_name)
            parameter_space._parameters["weight"] = larray(
                weight * WEIGHT_UNIT_US, shape=parameter_space.shape
            )
        super()._set_attributes(parameter_space)
