"""Every role's molecule scenarios, run in full (create, check, converge, idempotence, verify).

Each scenario's output goes to .cache/logs/molecule-<role>-<scenario>.log; a failure shows the
tail of it. Needs a Docker engine and the project's images (make images).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

from tests.support import REPO, ROLES, tool_env

SCENARIOS = sorted(
    (path.parent.parent.parent.name, path.parent.name)
    for path in ROLES.glob("*/molecule/*/molecule.yml")
)
LOGS = REPO / ".cache" / "logs"
SCENARIO_TIMEOUT = 1500  # seconds; the longest scenario takes about 15 minutes on a busy CI machine
# molecule's line at the end of each step, e.g. "INFO     [default > converge] Executed: Successful"
STEP_DONE = re.compile(r"\[[\w-]+ > ([\w-]+)\] Executed")


# Scenarios on the local OpenStack share the lab with its other suites: one pytest process runs
# them all (marker "lab", scripts/run-tests), the Docker scenarios run beside them. One Docker
# scenario goes to the lab's process too (marker "beside_lab") to even out the two processes'
# times, chosen from CI's durations (--durations=25 and the scenario table in its log). With
# the scenarios on Mitogen (2026-12-07, fresh clone): the lab's process 42.2 min, the other
# 50.5 min, docker_engine 200 s of it.
BESIDE_LAB = {("docker_engine", "default")}


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
    # Unbuffered: each line reaches the log (and its time stamp) when it is printed.
    extra_env: dict[str, str] = {"PYTHONUNBUFFERED": "1"}
    if scenario == "openstack":
        # Scenarios on the local OpenStack (default driver): the lab must be up.
        clouds = request.getfixturevalue("openstack_lab")
        extra_env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"molecule-{role}-{scenario}.log"
    started = time.monotonic()
    steps: list[tuple[str, float]] = []
    with log.open("w") as out:
        # Each line is stamped with the seconds since the start, and each step's end is noted,
        # so the log says where a scenario's time goes (the closing "steps:" line).
        process = subprocess.Popen(
            ["molecule", "test", "-s", scenario],
            cwd=ROLES / role,
            stdin=subprocess.DEVNULL,
            env=tool_env(**extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert process.stdout is not None
        step_started = started
        watchdog = threading.Timer(SCENARIO_TIMEOUT, process.kill)
        watchdog.start()
        try:
            for line in process.stdout:
                now = time.monotonic()
                out.write(f"[{now - started:7.1f}s] {line}")
                found = STEP_DONE.search(line)
                if found:
                    steps.append((found.group(1), now - step_started))
                    step_started = now
        finally:
            returncode = process.wait()
            watchdog.cancel()
        steps_line = ", ".join(f"{name} {took:.0f}s" for name, took in steps)
        out.write(f"steps: {steps_line}\n")
    request.node.user_properties.append(("molecule_steps", steps_line))
    elapsed = time.monotonic() - started
    text = log.read_text()
    tail = "\n".join(text.splitlines()[-60:])
    assert returncode == 0, (
        f"molecule test failed (exit {returncode}) after {elapsed:.0f}s ({steps_line}); "
        f"log: {log}\n{tail}"
    )
    # The idempotence step ran and passed: a second converge reported changed=0.
    assert "idempotence] Executed: Successful" in text, f"no idempotence result in {log}"
    where = log.relative_to(REPO)
    print(f"{role}:{scenario} passed in {elapsed:.0f}s ({steps_line}; log: {where})")


# Roles tested by another role's scenario, which converges them the way site.yml chains them
# (docs/decisions/0007, 0008); nmpi_common's entry points run in every role's scenario, and
# location_contract (a precheck on the controller) has unit tests (tests/unit).
COVERED_BY = {
    "cloud_network": "cloud_server:openstack",
    "cloud_security": "cloud_server:openstack",
    "data_volume": "cloud_server:openstack",
    "etcd": "patroni:default",
    "location_contract": "tests/unit/test_inventory_contract.py",
    # The monitoring server's roles on one witness, in playbooks/monitoring.yml's order.
    "node_exporter": "prometheus:default",
    "alertmanager": "prometheus:default",
    "journal_remote": "prometheus:default",
    "journal_upload": "prometheus:default",
    "metrics_proxy": "prometheus:default",
    # The monitoring phase's exporters, where what they read is converged: the database
    # members' PostgreSQL, the web host's nginx.
    "postgres_exporter": "patroni:default",
    "nginx_exporter": "platform:default",
    "nmpi_common": "every scenario",
    # Its TLS servers need the database members, the witness and their names across locations:
    # the lab's two sites and witness, where site.yml deploys it.
    "pgbackrest": "tests/lab/test_backups_on_lab.py",
}


def test_every_role_has_a_scenario_or_is_covered_by_another() -> None:
    roles = {path.parent.name for path in ROLES.glob("*/tasks")}
    with_scenario = {role for role, _ in SCENARIOS}
    assert roles - with_scenario == set(COVERED_BY), "roles without a scenario"
    for role, covered in COVERED_BY.items():
        if ":" in covered:
            owner, scenario = covered.split(":")
            assert (owner, scenario) in SCENARIOS, (role, covered)
        elif covered.startswith("tests/"):
            assert (REPO / covered).is_file(), (role, covered)
