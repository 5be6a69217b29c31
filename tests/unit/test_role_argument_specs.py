"""Bad role variables fail in precheck, before any change, with a message naming the variable."""

from __future__ import annotations

import pytest

from tests.support import ROLES, PrecheckCase, PrecheckRunner, precheck_case

ROLES_WITH_SPECS = sorted(p.parent.parent.name for p in ROLES.glob("*/meta/argument_specs.yml"))
# Options a role requires (no default): given, so that the unknown one is what is refused.
REQUIRED: dict[str, dict[str, object]] = {
    "journal_upload": {"journal_upload_url": "https://192.0.2.1:19532"},
}
UNKNOWN_VARIABLE = {
    role: precheck_case(role, {**REQUIRED.get(role, {}), f"{role}_no_such_option": 1})
    for role in ROLES_WITH_SPECS
}
DOCKER_ENGINE_DEFAULTS = precheck_case("docker_engine", {})


def docker_engine(variables: dict[str, object]) -> PrecheckCase:
    return precheck_case("docker_engine", variables)


def test_every_role_has_an_argument_spec() -> None:
    roles = sorted(p.name for p in ROLES.iterdir() if (p / "tasks").is_dir())
    assert roles, "no roles found"
    assert roles == ROLES_WITH_SPECS, "roles without meta/argument_specs.yml"


@pytest.mark.parametrize("role", ROLES_WITH_SPECS)
def test_unknown_role_variable_is_refused(role: str, precheck: PrecheckRunner) -> None:
    rc, out = precheck(UNKNOWN_VARIABLE[role])
    assert rc != 0
    assert f"{role}_no_such_option" in out
    assert "Unknown variable" in out


def test_docker_engine_defaults_pass_precheck(precheck: PrecheckRunner) -> None:
    rc, out = precheck(DOCKER_ENGINE_DEFAULTS)
    assert rc == 0, out


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            docker_engine({"docker_engine_log_max_file": "many"}),
            ["docker_engine_log_max_file", "int"],
            id="wrong-type",
        ),
        pytest.param(
            docker_engine({"docker_engine_log_driver": "fluentd-typo"}),
            ["docker_engine_log_driver", "fluentd-typo"],
            id="not-a-choice",
        ),
        pytest.param(
            docker_engine({"docker_engine_default_address_pools": [{"base": "172.30.0.0/16"}]}),
            ["docker_engine_default_address_pools", "size"],
            id="missing-suboption",
        ),
        pytest.param(
            docker_engine(
                {"docker_engine_default_address_pools": [{"base": "172.30.0.0", "size": 24}]}
            ),
            ["docker_engine_default_address_pools[0]", "172.30.0.0"],
            id="pool-not-cidr",
        ),
        pytest.param(
            docker_engine(
                {"docker_engine_default_address_pools": [{"base": "172.30.0.0/24", "size": 16}]}
            ),
            ["docker_engine_default_address_pools[0]", "size=16"],
            id="pool-size-shorter-than-pool",
        ),
        pytest.param(
            docker_engine({"docker_engine_bridge_ip": "172.30.255.1"}),
            ["docker_engine_bridge_ip", "172.30.255.1"],
            id="bridge-ip-without-prefix",
        ),
        pytest.param(
            docker_engine({"docker_engine_log_max_size": "20 MB"}),
            ["docker_engine_log_max_size", "20 MB"],
            id="log-size-format",
        ),
        pytest.param(
            docker_engine({"docker_engine_lgo_driver": "local"}),
            ["docker_engine_lgo_driver"],
            id="typo-in-name",
        ),
    ],
)
def test_docker_engine_bad_variable_names_it(
    case: PrecheckCase, expected: list[str], precheck: PrecheckRunner
) -> None:
    rc, out = precheck(case)
    assert rc != 0, out
    for text in expected:
        assert text in out, f"{text!r} not in output:\n{out[-3000:]}"
