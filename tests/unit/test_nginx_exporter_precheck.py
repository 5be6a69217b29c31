"""Prechecks of nginx's stub_status and its exporter: loopback only, ports that cannot clash.

Run on localhost with --tags precheck (no change is made).
"""

from __future__ import annotations

import pytest

from tests.support import PrecheckCase, PrecheckRunner, precheck_case

PLATFORM = {
    "platform_server_name": "nmpi.lab.example",
    "platform_database_hosts": ["10.0.0.1"],
    "platform_database_password": "p" * 16,
}

NGINX_EXPORTER_DEFAULTS = precheck_case("nginx_exporter", {})
PLATFORM_STATUS_PORT = {
    port: precheck_case("platform", {**PLATFORM, "platform_status_port": port})
    for port in (443, 8001)
}


def nginx_exporter(variables: dict[str, object]) -> PrecheckCase:
    return precheck_case("nginx_exporter", variables)


def test_nginx_exporter_defaults_pass(precheck: PrecheckRunner) -> None:
    rc, out = precheck(NGINX_EXPORTER_DEFAULTS)
    assert rc == 0, out[-3000:]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            nginx_exporter({"nginx_exporter_listen_address": "0.0.0.0"}),
            ["nginx_exporter_listen_address", "'0.0.0.0'", "loopback"],
            id="every-address",
        ),
        pytest.param(
            nginx_exporter({"nginx_exporter_listen_address": "10.0.0.5"}),
            ["nginx_exporter_listen_address", "'10.0.0.5'"],
            id="private-address",
        ),
        pytest.param(
            nginx_exporter({"nginx_exporter_listen_address": "127.0.0.256"}),
            ["nginx_exporter_listen_address", "'127.0.0.256'"],
            id="not-an-address",
        ),
        pytest.param(
            nginx_exporter({"nginx_exporter_port": 8081}),
            ["nginx_exporter_status_port", "8081 and"],
            id="same-port-as-stub-status",
        ),
    ],
)
def test_nginx_exporter_bad_variable_names_it(
    case: PrecheckCase, expected: list[str], precheck: PrecheckRunner
) -> None:
    rc, out = precheck(case)
    assert rc != 0, out
    for text in expected:
        assert text in out, f"{text!r} not in output:\n{out[-3000:]}"


@pytest.mark.parametrize("port", sorted(PLATFORM_STATUS_PORT))
def test_platform_status_port_clashing_with_nginx_or_the_api_is_refused(
    port: int, precheck: PrecheckRunner
) -> None:
    rc, out = precheck(PLATFORM_STATUS_PORT[port])
    assert rc != 0, out
    message = " ".join(out.split())
    assert "platform_status_port (nginx's stub_status on 127.0.0.1)" in message
    assert f"other than those (got {port})" in message
