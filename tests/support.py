"""Helpers shared by the test suites: where the repository is and how to run its tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROLES = REPO / "roles"


def read_images_env() -> dict[str, str]:
    """images/images.env as a dict: the one place image names and tags are kept."""
    env: dict[str, str] = {}
    for line in (REPO / "images" / "images.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def tool_env(**extra: str) -> dict[str, str]:
    """The environment the project's tools run in: the locked venv first on PATH, plain output."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(ROLES),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        NO_COLOR="1",
        PY_COLORS="0",
    )
    env.update(read_images_env())
    env.update(extra)
    return env


def run_playbook(
    playbook: str, tmp_path: Path, extra_vars: dict[str, object], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run a playbook against localhost (local connection, this interpreter)."""
    play = tmp_path / "play.yml"
    play.write_text(playbook)
    varfile = tmp_path / "vars.json"
    varfile.write_text(json.dumps(extra_vars))
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"@{varfile}",
            *args,
            str(play),
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
