"""Hardware platforms and the units their usage is charged in."""

from __future__ import annotations

from enum import StrEnum


class Platform(StrEnum):
    spinnaker = "SpiNNaker"
    brainscales = "BrainScaleS"
    brainscales2 = "BrainScaleS-2"
    spikey = "Spikey"
    test = "Test"
    demo = "Demo"


USAGE_UNITS: dict[str, str] = {
    Platform.spinnaker: "core-hours",
    Platform.brainscales: "wafer-hours",
    Platform.brainscales2: "chip-hours",
}


def usage_units(platform: str) -> str:
    return USAGE_UNITS.get(platform, "hours")
