"""hardware_config.check: the Job Manager's keys noted as not applicable, anything else refused."""

from __future__ import annotations

import pytest
from nmpi_emulator.errors import JobInputError
from nmpi_emulator.hardware_config import KNOWN_KEYS, MAX_KEYS, check


@pytest.mark.parametrize("platform", ["SpiNNaker", "BrainScaleS-2"])
@pytest.mark.parametrize("config", [None, {}])
def test_no_config_gives_no_notes(platform: str, config: object) -> None:
    assert check(platform, config) == []


def test_known_spinnaker_keys_are_noted_as_not_applicable() -> None:
    notes = check(
        "SpiNNaker",
        {"spynnaker_version": "7.4.1", "extra_pip_installs": ["elephant"], "pyNN_version": ""},
    )
    assert notes == [
        "hardware_config: spynnaker_version '7.4.1' is not applicable to the emulator"
        " (PyNN 0.13.0 on NEST 3.10.0); ignored",
        'hardware_config: extra_pip_installs ["elephant"] is not applicable to the emulator'
        " (PyNN 0.13.0 on NEST 3.10.0); ignored",
    ]


def test_every_job_manager_key_is_accepted() -> None:
    for platform, keys in KNOWN_KEYS.items():
        notes = check(platform, dict.fromkeys(keys, 1))
        assert len(notes) == len(keys)
    assert set(KNOWN_KEYS["BrainScaleS-2"]) == {
        "SOFTWARE_VERSION",
        "WAFER_MODULE",
        "HICANN",
        "FPGA",
    }


def test_long_values_are_shortened_in_the_note() -> None:
    (note,) = check("BrainScaleS-2", {"SOFTWARE_VERSION": "x" * 500})
    assert "..." in note
    assert len(note) < 200


def test_an_unknown_key_is_refused_with_the_known_ones() -> None:
    with pytest.raises(JobInputError) as caught:
        check("SpiNNaker", {"spynaker_version": "7"})
    message = str(caught.value)
    assert "'spynaker_version'" in message
    assert "spynnaker_version, spinnaker_tools_version" in message


def test_a_key_of_the_other_system_is_refused() -> None:
    with pytest.raises(JobInputError, match="'WAFER_MODULE' for SpiNNaker"):
        check("SpiNNaker", {"WAFER_MODULE": 33})


@pytest.mark.parametrize("config", ["WAFER_MODULE=3", [1, 2], 3])
def test_a_config_that_is_not_an_object_is_refused(config: object) -> None:
    with pytest.raises(JobInputError, match="must be an object"):
        check("BrainScaleS-2", config)


def test_size_is_bounded() -> None:
    with pytest.raises(JobInputError, match=f"at most {MAX_KEYS}"):
        check("SpiNNaker", {f"k{i}": 1 for i in range(MAX_KEYS + 1)})
    with pytest.raises(JobInputError, match="characters as JSON"):
        check("SpiNNaker", {"extra_pip_installs": ["p" * 100] * 100})
    with pytest.raises(JobInputError, match="not valid JSON"):
        check("SpiNNaker", {"extra_makes": {1, 2}})


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(JobInputError, match="unknown platform"):
        check("Loihi", None)
