"""Prechecks of container_images, pki, etcd and patroni: each mistake fails naming its variable.

Run on localhost with --tags precheck (no change is made); the etcd and patroni membership
checks need an inventory group, so these cases stop at the checks before them.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_role_argument_specs import precheck

PASSWORDS = {
    "patroni_superuser_password": "s" * 16,
    "patroni_replication_password": "r" * 16,
    "patroni_rewind_password": "w" * 16,
    "patroni_app_password": "a" * 16,
    "patroni_monitor_password": "m" * 16,
}


def test_container_images_list_passes(tmp_path: Path) -> None:
    variables: dict[str, object] = {
        "container_images_list": ["nmpi/etcd:0.1.0", "registry:5000/nmpi/etcd:1.2"]
    }
    rc, out = precheck("container_images", tmp_path, variables)
    assert rc == 0, out[-3000:]


def test_pki_lab_defaults_pass(tmp_path: Path) -> None:
    rc, out = precheck("pki", tmp_path, {"pki_mode": "lab", "pki_ca_dir": str(tmp_path / "ca")})
    assert rc == 0, out[-3000:]


@pytest.mark.parametrize(
    ("role", "variables", "expected"),
    [
        pytest.param(
            "container_images",
            {"container_images_list": ["nmpi/etcd"]},
            ["container_images_list[0]", "explicit tag", "nmpi/etcd"],
            id="image-without-tag",
        ),
        pytest.param(
            "container_images",
            {"container_images_list": ["nmpi/etcd:0.1.0", "nmpi/etcd:0.1.0"]},
            ["container_images_list[1]", "listed once"],
            id="image-twice",
        ),
        pytest.param(
            "container_images",
            {"container_images_registry": "https://registry.example.org"},
            ["container_images_registry", "without a scheme"],
            id="registry-with-scheme",
        ),
        pytest.param(
            "pki",
            {"pki_mode": "provided", "pki_cert": "PEM", "pki_cert_src": "/a/file"},
            ["pki_ca_cert / pki_ca_cert_src", "pki_cert pki_cert_src"],
            id="provided-files-missing-or-doubled",
        ),
        pytest.param(
            "pki",
            {},
            ["pki_mode is not set", "'provided' for", "production"],
            id="mode-not-stated",
        ),
        pytest.param(
            "pki",
            {"pki_mode": "lab", "pki_cert_renew_days": 400},
            ["pki_cert_renew_days (400)", "pki_cert_valid_days (397)"],
            id="renew-window-longer-than-validity",
        ),
        pytest.param(
            "pki",
            {"pki_mode": "lab", "pki_extra_names": ["nmpi.example.org", "not a name"]},
            ["pki_extra_names", "not a name"],
            id="extra-name-format",
        ),
        pytest.param(
            "etcd",
            {"etcd_heartbeat_interval": 500, "etcd_election_timeout": 1000},
            ["etcd_election_timeout", "500 /", "1000 ms"],
            id="election-timeout-below-five-heartbeats",
        ),
        pytest.param(
            "etcd",
            {"etcd_data_dir": "srv/etcd"},
            ["etcd_data_dir", "absolute", "srv/etcd"],
            id="relative-data-dir",
        ),
        pytest.param(
            "etcd",
            {},
            ["group 'etcd'", "localhost must be one of them"],
            id="host-not-in-group",
        ),
        pytest.param(
            "patroni",
            {**PASSWORDS, "patroni_app_password": "short"},
            ["patroni_app_password", "at least 12"],
            id="short-password",
        ),
        pytest.param(
            "patroni",
            {k: v for k, v in PASSWORDS.items() if k != "patroni_rewind_password"},
            ["patroni_rewind_password", "ansible-vault"],
            id="missing-password",
        ),
        pytest.param(
            "patroni",
            {**PASSWORDS, "patroni_loop_wait": 10, "patroni_retry_timeout": 15},
            ["loop_wait + 2 * retry_timeout <= ttl", "10 + 2 * 15"],
            id="retry-timeout-too-long-for-ttl",
        ),
        pytest.param(
            "patroni",
            {**PASSWORDS, "patroni_app_user": "replicator"},
            ["patroni_app_user", "different from each other"],
            id="app-user-is-the-replication-user",
        ),
        pytest.param(
            "patroni",
            {**PASSWORDS, "patroni_monitor_password": ""},
            ["patroni_monitor_password", "ansible-vault"],
            id="missing-monitor-password",
        ),
        pytest.param(
            "patroni",
            {**PASSWORDS, "patroni_monitor_user": "nmpi"},
            ["patroni_monitor_user", "different from each other"],
            id="monitor-user-is-the-app-user",
        ),
        pytest.param(
            "patroni",
            {**PASSWORDS, "patroni_monitor_user": "pg_monitor"},
            ["patroni_monitor_user", "pg_"],
            id="monitor-user-is-reserved",
        ),
        pytest.param(
            "patroni",
            {**PASSWORDS, "patroni_app_cidrs": ["10.10.0.0"]},
            ["patroni_app_cidrs", "10.10.0.0"],
            id="app-source-not-a-cidr",
        ),
        pytest.param(
            "patroni",
            {**PASSWORDS},
            ["group 'db'", "localhost must be one of them"],
            id="host-not-in-group",
        ),
    ],
)
def test_bad_variable_is_named(
    role: str, variables: dict[str, Any], expected: list[str], tmp_path: Path
) -> None:
    rc, out = precheck(role, tmp_path, variables)
    assert rc != 0, out[-3000:]
    for text in expected:
        assert text in out, f"{text!r} not in output:\n{out[-3000:]}"


def test_patroni_passwords_never_printed(tmp_path: Path) -> None:
    secret = "NotToBePrinted-" + secrets.token_hex(8)  # made per run
    variables: dict[str, object] = {
        **PASSWORDS,
        "patroni_app_password": secret,
        "patroni_rewind_password": "",
    }
    rc, out = precheck("patroni", tmp_path, variables)
    assert rc != 0
    assert secret not in out
