"""``pyNN.spiNNaker`` emulated on NEST: what ``import pyNN.spiNNaker as sim`` gives a job.

Everything of ``pyNN.nest`` is re-exported; on top of it, SpiNNaker's rules and behaviour
(``nmpi_emulator.hardware``):

- ``setup()``: timestep 1.0 (the default, as on sPyNNaker) or 0.1 ms; sPyNNaker-only keywords are
  accepted (``time_scale_factor`` is honoured, the others ignored); NEST's seed is the job's
  (``NMPI_EMULATOR_SEED``) unless the script passes ``rng_seed``.
- ``Population``: unsupported cell types are refused at creation, before anything runs;
  ``additional_parameters`` and other sPyNNaker keywords are accepted and ignored.
- ``set_number_of_neurons_per_core(celltype, n)``: used to count cores.
- ``run()``/``run_until()``: real time, i.e. a call lasts at least biological time *
  time_scale_factor of wall-clock time (NEST is usually faster: the rest is slept out).
- ``Projection``: sPyNNaker takes positive weights on the inhibitory receptor of current-based
  cells, NEST wants negative ones: such weights are negated (``get("weight")`` then shows them
  negative, as pyNN.nest does).
- ``end()`` (and interpreter exit) writes the report file (``frontends.report``), charged in
  core-hours.
"""

from __future__ import annotations

import atexit
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
from pyNN import common as _common  # noqa: E402
from pyNN.nest import *  # noqa: E402, F403

# Each neo file written through PyNN gets a <file>.spikes.json beside it (frontends.spikes).
_spikes.install()

# Keywords sPyNNaker's setup() takes that mean nothing on NEST (time_scale_factor is honoured).
SPYNNAKER_SETUP_KEYWORDS = frozenset(
    {
        "time_scale_factor",
        "n_chips_required",
        "n_boards_required",
        "database_socket_addresses",
        "graph_label",
        "machine",
        "model_binary_module",
        "model_binary_folder",
        "user_extra_algorithm_xml_path",
        "extra_algorithm_xml_paths",
        "extra_mapping_inputs",
        "extra_mapping_algorithms",
        "extra_pre_run_algorithms",
        "extra_post_run_algorithms",
        "extra_load_algorithms",
    }
)


@dataclass
class _State:
    """What the report needs, accumulated over the script's life."""

    set_up: bool = False
    timestep_ms: float = 1.0
    time_scale_factor: float = 1.0
    seed: int = 0
    populations: list[tuple[str, int]] = field(default_factory=list)
    neurons_per_core: dict[str, int] = field(default_factory=dict)
    biological_time_ms: float = 0.0
    wall_time_s: float = 0.0


_state = _State()


def setup(timestep: float = 1.0, min_delay: float | str = "auto", **extra_params: Any) -> int:
    """Check the timestep, seed NEST with the job's seed and set up pyNN.nest."""
    hardware.check_spinnaker_timestep(float(timestep))
    tsf = extra_params.get("time_scale_factor")
    time_scale_factor = 1.0 if tsf is None else float(tsf)
    if time_scale_factor <= 0:
        raise hardware.HardwareConstraintError(
            f"SpiNNaker time_scale_factor must be positive (the script asked for {tsf!r})"
        )
    params = {k: v for k, v in extra_params.items() if k not in SPYNNAKER_SETUP_KEYWORDS}
    seed = int(params.get("rng_seed") or report.job_seed())
    params["rng_seed"] = seed
    params.setdefault("verbosity", "error")
    # Scripts that draw from numpy's global generator become reproducible with the job's seed.
    np.random.seed(seed % 2**32)
    rank: int = _nest.setup(timestep=timestep, min_delay=min_delay, **params)
    _state.set_up = True
    _state.timestep_ms = float(timestep)
    _state.time_scale_factor = time_scale_factor
    _state.seed = seed
    _state.populations.clear()
    _state.biological_time_ms = 0.0
    _state.wall_time_s = 0.0
    return rank


def set_number_of_neurons_per_core(neuron_type: Any, max_permitted: int) -> None:
    """Neurons of `neuron_type` (class, instance or name) per core, for the core count."""
    name = neuron_type if isinstance(neuron_type, str) else cell_type_name(neuron_type)
    hardware.check_spinnaker_cell_type(name)
    hardware.check_spinnaker_neurons_per_core(name, max_permitted)
    _state.neurons_per_core[name] = max_permitted


def _real_time(simulate: Callable[[], float], biological_ms: float) -> float:
    """Run `simulate` and make the call last as long as SpiNNaker would take."""
    start = time.monotonic()
    result = simulate()
    target = hardware.spinnaker_wall_time_s(biological_ms, _state.time_scale_factor)
    remaining = target - (time.monotonic() - start)
    if remaining > 0:
        time.sleep(remaining)
    _state.biological_time_ms += biological_ms
    _state.wall_time_s += time.monotonic() - start
    return result


def run(simtime: float, callbacks: Any = None) -> float:
    """Advance the simulation by `simtime` ms, in (scaled) real time."""
    return _real_time(lambda: float(_nest.run(simtime, callbacks)), float(simtime))


def run_until(time_point: float, callbacks: Any = None) -> float:
    """Advance the simulation until `time_point` ms, in (scaled) real time."""
    biological = max(0.0, float(time_point) - float(_nest.get_current_time()))
    return _real_time(lambda: float(_nest.run_until(time_point, callbacks)), biological)


run_for = run


def end() -> None:
    """Write pending files (pyNN.nest) and the report."""
    _nest.end()
    write_report()


def usage() -> dict[str, object]:
    """Cores, boards and core-hours of what the script built and ran so far."""
    cores = hardware.spinnaker_cores(_state.populations, _state.neurons_per_core)
    neurons = sum(n for t, n in _state.populations if not t.startswith("SpikeSource"))
    return {
        "cores": cores,
        "boards": hardware.spinnaker_boards(cores),
        "neurons": neurons,
        "spike_sources": sum(n for _, n in _state.populations) - neurons,
        "core_hours": hardware.spinnaker_core_hours(
            cores, _state.biological_time_ms, _state.time_scale_factor
        ),
    }


def write_report() -> None:
    """(Re)write the report file, if the runner asked for one and the script called setup()."""
    if not _state.set_up:
        return
    u = usage()
    report.write_report(
        hardware.SPINNAKER_PLATFORM,
        float(u["core_hours"]),  # type: ignore[arg-type]
        hardware.SPINNAKER_UNITS,
        {
            "seed": _state.seed,
            "timestep_ms": _state.timestep_ms,
            "time_scale_factor": _state.time_scale_factor,
            "biological_time_ms": _state.biological_time_ms,
            "wall_time_s": round(_state.wall_time_s, 3),
            "neurons": u["neurons"],
            "spike_sources": u["spike_sources"],
            "cores": u["cores"],
            "boards": u["boards"],
        },
    )


atexit.register(write_report)


class Population(_nest.Population):  # type: ignore[misc]
    """pyNN.nest's Population, refusing cell types SpiNNaker lacks; sPyNNaker keywords ignored."""

    def __init__(
        self,
        size: Any,
        cellclass: Any,
        cellparams: Any = None,
        structure: Any = None,
        initial_values: Any = None,
        label: str | None = None,
        additional_parameters: Any = None,
        **additional_kwargs: Any,
    ) -> None:
        name = cell_type_name(cellclass)
        hardware.check_spinnaker_cell_type(name)
        super().__init__(size, cellclass, cellparams, structure, initial_values or {}, label)
        _state.populations.append((name, population_size(size)))


def _inhibitory_current_based(receptor_type: Any, post: Any) -> bool:
    return receptor_type == "inhibitory" and not bool(post.conductance_based)


def _with_negative_weight(synapse_type: Any) -> Any:
    """A copy of `synapse_type` whose weights are -|w| (the user's object stays untouched)."""
    negated = copy.copy(synapse_type)
    space = copy.copy(synapse_type.parameter_space)
    space._parameters = dict(space._parameters)
    if "weight" in space._parameters:
        space._parameters["weight"] = -abs(space._parameters["weight"])
    negated.parameter_space = space
    return negated


class Projection(_nest.Projection):  # type: ignore[misc]
    """pyNN.nest's Projection taking sPyNNaker's positive inhibitory weights."""

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
        self._negate_weights = _inhibitory_current_based(receptor_type, postsynaptic_population)
        if self._negate_weights and synapse_type is not None:
            synapse_type = _with_negative_weight(synapse_type)
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
        # Weights from a connection list (FromListConnector) bypass the synapse type.
        if self._negate_weights and "weight" in connection_parameters:
            connection_parameters["weight"] = -np.abs(connection_parameters["weight"])
        super()._convergent_connect(
            presynaptic_indices, postsynaptic_index, location_selector, **connection_parameters
        )

    def _set_attributes(self, parameter_space: Any) -> None:
        # Projection.set(weight=...) with sPyNNaker's positive inhibitory weights.
        # A ParameterSpace iterates over values, not names: membership needs keys().
        if self._negate_weights and "weight" in parameter_space.keys():  # noqa: SIM118
            parameter_space._parameters["weight"] = -abs(parameter_space["weight"])
        super()._set_attributes(parameter_space)


# The procedural API must build the checked classes above, not pyNN.nest's.
create = _common.build_create(Population)
connect = _common.build_connect(Projection, _nest.FixedProbabilityConnector, _nest.StaticSynapse)
