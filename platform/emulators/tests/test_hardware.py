"""The hardware rules and charges (nmpi_emulator.hardware): pure functions, no simulator."""

from __future__ import annotations

import math

import pytest
from nmpi_emulator import hardware
from nmpi_emulator.hardware import HardwareConstraintError


def test_constraint_error_is_a_value_error() -> None:
    assert issubclass(HardwareConstraintError, ValueError)


@pytest.mark.parametrize("name", sorted(hardware.SPINNAKER_CELL_TYPES))
def test_spinnaker_accepts_its_cell_types(name: str) -> None:
    hardware.check_spinnaker_cell_type(name)


@pytest.mark.parametrize(
    "name", ["HH_cond_exp", "EIF_cond_exp_isfa_ista", "IF_cond_alpha", "GIF_cond_exp", "HXNeuron"]
)
def test_spinnaker_refuses_other_cell_types(name: str) -> None:
    with pytest.raises(HardwareConstraintError, match=f"does not support cell type {name} "):
        hardware.check_spinnaker_cell_type(name)


def test_spinnaker_timesteps() -> None:
    hardware.check_spinnaker_timestep(1.0)
    hardware.check_spinnaker_timestep(0.1)
    with pytest.raises(HardwareConstraintError, match=r"1 or 0\.1 ms only .*asked for 0\.5 ms"):
        hardware.check_spinnaker_timestep(0.5)


def test_spinnaker_neurons_per_core_bounds() -> None:
    hardware.check_spinnaker_neurons_per_core("IF_curr_exp", 1)
    hardware.check_spinnaker_neurons_per_core("IF_curr_exp", 256)
    for bad in (0, 257, 2.5):
        with pytest.raises(HardwareConstraintError, match="neurons per core"):
            hardware.check_spinnaker_neurons_per_core("IF_curr_exp", bad)  # type: ignore[arg-type]


def test_spinnaker_cores_count_each_population_apart() -> None:
    # 100 cells + 20 Poisson sources: one core each; sources take cores too.
    assert hardware.spinnaker_cores([("IF_curr_exp", 100), ("SpikeSourcePoisson", 20)]) == 2
    assert hardware.spinnaker_cores([("IF_curr_exp", 257)]) == 2
    assert hardware.spinnaker_cores([("IF_curr_exp", 80), ("IF_curr_exp", 20)]) == 2
    assert hardware.spinnaker_cores([("IF_curr_exp", 250)], {"IF_curr_exp": 100}) == 3
    assert hardware.spinnaker_cores([]) == 0


def test_spinnaker_boards() -> None:
    assert hardware.SPINNAKER_CORES_PER_BOARD == 16 * 48
    assert hardware.spinnaker_boards(0) == 1
    assert hardware.spinnaker_boards(768) == 1
    assert hardware.spinnaker_boards(769) == 2


def test_spinnaker_charge_is_cores_times_real_time() -> None:
    assert hardware.spinnaker_wall_time_s(1000.0) == 1.0
    assert hardware.spinnaker_wall_time_s(1000.0, time_scale_factor=10) == 10.0
    assert math.isclose(hardware.spinnaker_core_hours(2, 3_600_000.0), 2.0)
    assert math.isclose(hardware.spinnaker_core_hours(2, 1000.0), 2 / 3600)


@pytest.mark.parametrize(
    "name", ["HXNeuron", "SpikeSourceArray", "SpikeSourcePoisson", "SpikeSourcePoissonOnChip"]
)
def test_brainscales2_accepts_its_cell_types(name: str) -> None:
    hardware.check_brainscales2_cell_type(name)


def test_brainscales2_refuses_other_cell_types() -> None:
    with pytest.raises(HardwareConstraintError, match=r"BrainScaleS-2 does not support .*IF_curr"):
        hardware.check_brainscales2_cell_type("IF_curr_exp")


def test_brainscales2_one_chip_of_512_neurons() -> None:
    hardware.check_brainscales2_neurons(512)
    with pytest.raises(HardwareConstraintError, match=r"512 neurons .*asks for 513"):
        hardware.check_brainscales2_neurons(513)


def test_brainscales2_weights_are_6_bit() -> None:
    hardware.check_brainscales2_weights([0, 1.0, 63], "p")
    for bad in (64, -1, 2.5):
        with pytest.raises(HardwareConstraintError, match=f"projection p asks for weight {bad:g}"):
            hardware.check_brainscales2_weights([1, bad], "p")


def test_brainscales2_charge_is_accelerated_time_plus_overhead() -> None:
    assert math.isclose(hardware.brainscales2_hardware_time_s(1000.0, runs=1), 0.501)
    assert math.isclose(hardware.brainscales2_hardware_time_s(0.0, runs=3), 1.5)
    assert math.isclose(hardware.brainscales2_chip_hours(1000.0, runs=1), 0.501 / 3600)
