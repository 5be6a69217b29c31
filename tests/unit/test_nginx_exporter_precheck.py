"""Prechecks of nginx's stub_status and its exporter: loopback only, ports that cannot clash.

Run on localhost with --tags precheck (no change is made).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_role_argument_specs import precheck

PLATFORM = {
    "platform_server_name": "nmpi.lab.example",
    "platform_database_hosts": ["10.0.0.1"],
    "platform_database_password": "p" * 16,
}


def test_nginx_exporter_defaults_pass(tmp_path: Path) -> None:
    rc, out = precheck("nginx_exporter", tmp_path, {})
    assert rc == 0, out[-3000:]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        pytest.param(
            {"nginx_exporter_listen_address": "0.0.0.0"},
            ["nginx_exporter_listen_address", "'0.0.0.0'", "loopback"],
            id="every-address",
        ),
        pytest.param(
            {"nginx_exporter_listen_address": "10.0.0.5"},
            ["nginx_exporter_listen_address", "'10.0.0.5'"],
            id="private-address",
        ),
        pytest.param(
            {"nginx_exporter_listen_address": "127.0.0.256"},
            ["nginx_exporter_listen_address", "'127.0.0.256'"],
            id="not-an-address",
        ),
        pytest.param(
            {"nginx_exporter_port": 8081},
            ["nginx_exporter_status_port", "8081 and"],
            id="same-port-as-stub-status",
        ),
    ],
)
def test_nginx_exporter_bad_variable_names_it(
    variables: dict[str, object], expected: list[str], tmp_path: Path
) -> None:
    rc, out = precheck("nginx_exporter", tmp_path, variables)
    assert rc != 0, out
    for text in expected:
        assert text in out, f"{text!r} not in output:\n{out[-3000:]}"


@pytest.mark.parametrize("port", [443, 8001])
def test_platform_status_port_clashing_with_nginx_or_the_api_is_refused(
    port: int, tmp_path: Path
) -> None:
    rc, out = precheck("platform", tmp_path, {**PLATFORM, "platform_status_port": port})
    assert rc != 0, out
    message = " ".join(out.split())
    assert "platform_status_port (nginx's stub_status on 127.0.0.1)" in message
    assert f"other than those (got {port})" in message
