"""command.build_argv: the default command, {system}, splitting without a shell, and the script."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nmpi_emulator.command import MAX_ARGS, build_argv
from nmpi_emulator.errors import JobInputError


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "job"
    (folder / "sub").mkdir(parents=True)
    (folder / "run.py").write_text("print(1)\n")
    (folder / "sub" / "main.py").write_text("print(2)\n")
    return folder


@pytest.mark.parametrize(
    ("platform", "system"), [("SpiNNaker", "spiNNaker"), ("BrainScaleS-2", "brainscales2")]
)
@pytest.mark.parametrize("command", [None, "", "  "])
def test_default_command(code: Path, platform: str, system: str, command: str | None) -> None:
    assert build_argv(command, platform, code) == ["run.py", system]


def test_words_are_split_like_a_shell_but_never_run_by_one(code: Path) -> None:
    argv = build_argv("sub/main.py {system} --name 'a b' ; rm -rf $HOME", "SpiNNaker", code)
    assert argv == ["sub/main.py", "spiNNaker", "--name", "a b", ";", "rm", "-rf", "$HOME"]


def test_only_system_is_substituted(code: Path) -> None:
    assert build_argv("run.py {0.__class__} {system}", "SpiNNaker", code) == [
        "run.py",
        "{0.__class__}",
        "spiNNaker",
    ]


def test_the_path_is_normalised(code: Path) -> None:
    assert build_argv("./sub/./main.py", "SpiNNaker", code) == ["sub/main.py"]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("python run.py", "must be the Python script"),
        ("run.sh", "must be the Python script"),
        ("/etc/run.py", "inside the job's code"),
        ("../run.py", "inside the job's code"),
        ("sub/../run.py", "inside the job's code"),
        ("missing.py", "is not in the job's code; .py files present: run.py, sub/main.py"),
        ("run.py 'unclosed", "cannot be split"),
        ("sub", "must be the Python script"),
    ],
)
def test_bad_commands_are_refused(code: Path, command: str, expected: str) -> None:
    with pytest.raises(JobInputError, match=expected.replace(".", r"\.")):
        build_argv(command, "SpiNNaker", code)


def test_a_symlink_out_of_the_folder_is_refused(code: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.py").write_text("print(3)\n")
    os.symlink(tmp_path / "outside.py", code / "link.py")
    with pytest.raises(JobInputError, match="points outside"):
        build_argv("link.py", "SpiNNaker", code)


def test_a_folder_named_like_a_script_is_refused(code: Path) -> None:
    (code / "dir.py").mkdir()
    with pytest.raises(JobInputError, match="is not in the job's code"):
        build_argv("dir.py", "SpiNNaker", code)


def test_length_is_bounded(code: Path) -> None:
    with pytest.raises(JobInputError, match="at most 4096"):
        build_argv("run.py " + "x" * 5000, "SpiNNaker", code)
    with pytest.raises(JobInputError, match=f"at most {MAX_ARGS}"):
        build_argv("run.py" + " x" * MAX_ARGS, "SpiNNaker", code)


def test_an_unknown_platform_is_refused(code: Path) -> None:
    with pytest.raises(JobInputError, match="unknown platform"):
        build_argv(None, "BrainScaleS", code)
