"""Bad role variables fail in precheck, before any change, with a message naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ROLES, run_playbook

ROLES_WITH_SPECS = sorted(p.parent.parent.name for p in ROLES.glob("*/meta/argument_specs.yml"))
# Options a role requires (no default): given, so that the unknown one is what is refused.
REQUIRED: dict[str, dict[str, object]] = {
    "journal_upload": {"journal_upload_url": "https://192.0.2.1:19532"},
}


def precheck(role: str, tmp_path: Path, variables: dict[str, object]) -> tuple[int, str]:
    play = f"- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: {role}\n"
    result = run_playbook(play, tmp_path, variables, "--tags", "precheck")
    return result.returncode, result.stdout + result.stderr


def test_every_role_has_an_argument_spec() -> None:
    roles = sorted(p.name for p in ROLES.iterdir() if (p / "tasks").is_dir())
    assert roles, "no roles found"
    assert roles == ROLES_WITH_SPECS, "roles without meta/argument_specs.yml"


@pytest.mark.parametrize("role", ROLES_WITH_SPECS)
def test_unknown_role_variable_is_refused(role: str, tmp_path: Path) -> None:
    rc, out = precheck(role, tmp_path, {**REQUIRED.get(role, {}), f"{role}_no_such_option": 1})
    assert rc != 0
    assert f"{role}_no_such_option" in out
    assert "Unknown variable" in out


def test_docker_engine_defaults_pass_precheck(tmp_path: Path) -> None:
    rc, out = precheck("docker_engine", tmp_path, {})
    assert rc == 0, out


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        pytest.param(
            {"docker_engine_log_max_file": "many"},
            ["docker_engine_log_max_file", "int"],
            id="wrong-type",
        ),
        pytest.param(
            {"docker_engine_log_driver": "fluentd-typo"},
            ["docker_engine_log_driver", "fluentd-typo"],
            id="not-a-choice",
        ),
        pytest.param(
            {"docker_engine_default_address_pools": [{"base": "172.30.0.0/16"}]},
            ["docker_engine_default_address_pools", "size"],
            id="missing-suboption",
        ),
        pytest.param(
            {"docker_engine_default_address_pools": [{"base": "172.30.0.0", "size": 24}]},
            ["docker_engine_default_address_pools[0]", "172.30.0.0"],
            id="pool-not-cidr",
        ),
        pytest.param(
            {"docker_engine_default_address_pools": [{"base": "172.30.0.0/24", "size": 16}]},
            ["docker_engine_default_address_pools[0]", "size=16"],
            id="pool-size-shorter-than-pool",
        ),
        pytest.param(
            {"docker_engine_bridge_ip": "172.30.255.1"},
            ["docker_engine_bridge_ip", "172.30.255.1"],
            id="bridge-ip-without-prefix",
        ),
        pytest.param(
            {"docker_engine_log_max_size": "20 MB"},
            ["docker_engine_log_max_size", "20 MB"],
            id="log-size-format",
        ),
        pytest.param(
            {"docker_engine_lgo_driver": "local"},
            ["docker_engine_lgo_driver"],
            id="typo-in-name",
        ),
    ],
)
def test_docker_engine_bad_variable_names_it(
    variables: dict[str, object], expected: list[str], tmp_path: Path
) -> None:
    rc, out = precheck("docker_engine", tmp_path, variables)
    assert rc != 0, out
    for text in expected:
        assert text in out, f"{text!r} not in output:\n{out[-3000:]}"
