"""The job's hardware_config: the Job Manager's keys are accepted and noted, unknown keys refused.

None of the keys changes what the emulator runs (one PyNN on one NEST): they pick software
versions, extra installs or physical hardware (wafer, chip, FPGA) the emulator does not have. The
runner puts the returned notes in the job's log so users see that their setting had no effect.
An unknown key is refused rather than ignored: it is most likely a typo of a key that would
matter on the real system.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from nmpi_emulator.errors import JobInputError

SIMULATOR = "PyNN 0.13.0 on NEST 3.10.0"

# The Job Manager app's forms; SpiNNaker's also from hbp-neuromorphic-client's Demo provider.
KNOWN_KEYS: Mapping[str, tuple[str, ...]] = {
    "SpiNNaker": (
        "spynnaker_version",
        "spinnaker_tools_version",
        "pyNN_version",
        "extra_pip_installs",
        "extra_python_setups",
        "extra_git_repositories",
        "extra_makes",
    ),
    # The Job Manager's BrainScaleS form (used for BrainScaleS-2 too) has exactly these four.
    "BrainScaleS-2": ("SOFTWARE_VERSION", "WAFER_MODULE", "HICANN", "FPGA"),
}

MAX_KEYS = 50
MAX_VALUE_CHARS = 4096  # one value as JSON
MAX_TOTAL_CHARS = 65536  # the whole config as JSON
_SHOWN_CHARS = 80  # of a value quoted in a note


def check(platform: str, config: object) -> list[str]:
    """Notes for the job log about `config`; JobInputError if it cannot be accepted."""
    if platform not in KNOWN_KEYS:
        raise JobInputError(
            f"hardware_config: unknown platform {platform!r}; expected one of "
            + ", ".join(repr(name) for name in KNOWN_KEYS)
        )
    if config is None:
        return []
    if not isinstance(config, dict):
        raise JobInputError(
            f"hardware_config must be an object (a dict) or null, not {type(config).__name__}"
        )
    if len(config) > MAX_KEYS:
        raise JobInputError(f"hardware_config has {len(config)} keys; at most {MAX_KEYS} allowed")
    try:
        total = json.dumps(config)
    except (TypeError, ValueError) as error:
        raise JobInputError(f"hardware_config is not valid JSON data: {error}") from None
    if len(total) > MAX_TOTAL_CHARS:
        raise JobInputError(
            f"hardware_config is {len(total)} characters as JSON; at most {MAX_TOTAL_CHARS}"
        )
    known = KNOWN_KEYS[platform]
    notes: list[str] = []
    for key, value in config.items():
        if not isinstance(key, str) or key not in known:
            raise JobInputError(
                f"hardware_config: unknown key {key!r} for {platform}; known keys: "
                + ", ".join(known)
            )
        shown = json.dumps(value)
        if len(shown) > MAX_VALUE_CHARS:
            raise JobInputError(
                f"hardware_config: the value of {key!r} is {len(shown)} characters as JSON;"
                f" at most {MAX_VALUE_CHARS}"
            )
        if value is None or value in ("", [], {}):
            continue  # an empty field of the Job Manager's form: nothing was asked for
        if isinstance(value, str):
            shown = repr(value)
        if len(shown) > _SHOWN_CHARS:
            shown = shown[: _SHOWN_CHARS - 3] + "..."
        notes.append(
            f"hardware_config: {key} {shown} is not applicable to the emulator"
            f" ({SIMULATOR}); ignored"
        )
    return notes
