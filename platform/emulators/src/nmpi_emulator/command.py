"""The job's command line (`run.py {system}` by default) to an argv; never through a shell."""

from __future__ import annotations

import shlex
from pathlib import Path, PurePosixPath

from nmpi_emulator.errors import JobInputError

DEFAULT_COMMAND = "run.py {system}"
# The value of {system}, as the reference sites pass it to run.py (the PyNN backend name).
SYSTEMS = {"SpiNNaker": "spiNNaker", "BrainScaleS-2": "brainscales2"}
MAX_COMMAND_CHARS = 4096
MAX_ARGS = 256


def build_argv(command: str | None, platform: str, job_dir: Path) -> list[str]:
    """[script path relative to job_dir, *args]; the sandbox puts the interpreter in front."""
    if platform not in SYSTEMS:
        raise JobInputError(
            f"command: unknown platform {platform!r}; expected one of "
            + ", ".join(repr(name) for name in SYSTEMS)
        )
    if command is None or not command.strip():
        command = DEFAULT_COMMAND
    if len(command) > MAX_COMMAND_CHARS:
        raise JobInputError(
            f"command is {len(command)} characters long; at most {MAX_COMMAND_CHARS}"
        )
    # Only {system} is replaced: str.format would also read {0.__class__} and the like.
    command = command.replace("{system}", SYSTEMS[platform])
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise JobInputError(f"command {command!r} cannot be split into words: {error}") from None
    if not words:
        raise JobInputError("command is empty")
    if len(words) > MAX_ARGS:
        raise JobInputError(f"command has {len(words)} words; at most {MAX_ARGS}")
    if any("\x00" in word for word in words):
        raise JobInputError("command contains a NUL character")
    return [_script(words[0], job_dir), *words[1:]]


def _script(word: str, job_dir: Path) -> str:
    """The first word as a path relative to job_dir, checked to be a .py file inside it."""
    path = PurePosixPath(word)
    if not word.endswith(".py"):
        raise JobInputError(
            f"command: the first word must be the Python script to run (a .py file in the job's"
            f" code), not {word!r}"
        )
    if path.is_absolute() or ".." in path.parts:
        raise JobInputError(
            f"command: the script {word!r} must be a path inside the job's code,"
            " without '..' or a leading '/'"
        )
    root = job_dir.resolve(strict=True)
    target = (root / path).resolve()  # follows symlinks: a link out of the folder is caught
    if not target.is_relative_to(root):
        raise JobInputError(f"command: the script {word!r} points outside the job's code")
    if not target.is_file():
        present = sorted(str(p.relative_to(root)) for p in root.rglob("*.py"))[:10]
        hint = f"; .py files present: {', '.join(present)}" if present else "; no .py file found"
        raise JobInputError(f"command: the script {word!r} is not in the job's code{hint}")
    return str(target.relative_to(root))
