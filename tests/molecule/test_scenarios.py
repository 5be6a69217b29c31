"""Every role's molecule scenarios, run in full (create, check, converge, idempotence, verify).

Each scenario's output goes to .cache/logs/molecule-<role>-<scenario>.log; a failure shows the
tail of it. Needs a Docker engine and the project's images (make images).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.support import REPO, ROLES, tool_env

SCENARIOS = sorted(
    (path.parent.parent.parent.name, path.parent.name)
    for path in ROLES.glob("*/molecule/*/molecule.yml")
)
LOGS = REPO / ".cache" / "logs"


# Scenarios on the local OpenStack share the lab with its other suites: one pytest process runs
# them all (marker "lab", scripts/run-tests), the Docker scenarios run beside them. The longest
# Docker scenario goes to the lab's process too (marker "beside_lab"): without it the other
# process takes about 20 minutes longer (CI's durations, --durations=15 in its log).
BESIDE_LAB = {("patroni", "default")}


def _marks(role: str, scenario: str) -> list[pytest.MarkDecorator]:
    if scenario == "openstack":
        return [pytest.mark.lab]
    if (role, scenario) in BESIDE_LAB:
        return [pytest.mark.beside_lab]
    return []


PARAMS = [
    pytest.param(role, scenario, id=f"{role}:{scenario}", marks=_marks(role, scenario))
    for role, scenario in SCENARIOS
]


@pytest.mark.slow
@pytest.mark.parametrize(("role", "scenario"), PARAMS)
def test_molecule_scenario(role: str, scenario: str, request: pytest.FixtureRequest) -> None:
    extra_env: dict[str, str] = {}
    if scenario == "openstack":
        # Scenarios on the local OpenStack (default driver): the lab must be up.
        clouds = request.getfixturevalue("openstack_lab")
        extra_env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"molecule-{role}-{scenario}.log"
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            ["molecule", "test", "-s", scenario],
            cwd=ROLES / role,
            stdin=subprocess.DEVNULL,
            env=tool_env(**extra_env),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1200,
            check=False,
        )
    elapsed = time.monotonic() - started
    text = log.read_text()
    tail = "\n".join(text.splitlines()[-60:])
    assert result.returncode == 0, f"molecule test failed after {elapsed:.0f}s; log: {log}\n{tail}"
    # The idempotence step ran and passed: a second converge reported changed=0.
    assert "idempotence] Executed: Successful" in text, f"no idempotence result in {log}"
    print(f"{role}:{scenario} passed in {elapsed:.0f}s (log: {log.relative_to(REPO)})")


def test_molecule_scenarios_exist() -> None:
    assert ("docker_engine", "default") in SCENARIOS
    assert ("docker_engine", "openstack") in SCENARIOS
