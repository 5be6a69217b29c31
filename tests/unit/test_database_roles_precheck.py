"""Prechecks of container_images, pki, etcd and patroni: each mistake fails naming its variable.

Run on localhost with --tags precheck (no change is made); the etcd and patroni membership
checks need an inventory group, so these cases stop at the checks before them.
"""

from __future__ import annotations

import secrets

import pytest

from tests.support import CASE_TMP, PrecheckCase, PrecheckRunner, precheck_case

PASSWORDS = {
    "patroni_superuser_password": "s" * 16,
    "patroni_replication_password": "r" * 16,
    "patroni_rewind_password": "w" * 16,
    "patroni_app_password": "a" * 16,
    "patroni_monitor_password": "m" * 16,
}


CONTAINER_IMAGES_LIST = precheck_case(
    "container_images",
    {"container_images_list": ["nmpi/etcd:0.1.0", "registry:5000/nmpi/etcd:1.2"]},
)
PKI_LAB_DEFAULTS = precheck_case("pki", {"pki_mode": "lab", "pki_ca_dir": f"{CASE_TMP}/ca"})
SECRET = "NotToBePrinted-" + secrets.token_hex(8)  # made per run
PATRONI_PASSWORD_NOT_PRINTED = precheck_case(
    "patroni", {**PASSWORDS, "patroni_app_password": SECRET, "patroni_rewind_password": ""}
)


def test_container_images_list_passes(precheck: PrecheckRunner) -> None:
    rc, out = precheck(CONTAINER_IMAGES_LIST)
    assert rc == 0, out[-3000:]


def test_pki_lab_defaults_pass(precheck: PrecheckRunner) -> None:
    rc, out = precheck(PKI_LAB_DEFAULTS)
    assert rc == 0, out[-3000:]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            precheck_case("container_images", {"container_images_list": ["nmpi/etcd"]}),
            ["container_images_list[0]", "explicit tag", "nmpi/etcd"],
            id="image-without-tag",
        ),
        pytest.param(
            precheck_case(
                "container_images",
                {"container_images_list": ["nmpi/etcd:0.1.0", "nmpi/etcd:0.1.0"]},
            ),
            ["container_images_list[1]", "listed once"],
            id="image-twice",
        ),
        pytest.param(
            precheck_case(
                "container_images", {"container_images_registry": "https://registry.example.org"}
            ),
            ["container_images_registry", "without a scheme"],
            id="registry-with-scheme",
        ),
        pytest.param(
            precheck_case(
                "pki", {"pki_mode": "provided", "pki_cert": "PEM", "pki_cert_src": "/a/file"}
            ),
            ["pki_ca_cert / pki_ca_cert_src", "pki_cert pki_cert_src"],
            id="provided-files-missing-or-doubled",
        ),
        pytest.param(
            precheck_case("pki", {}),
            ["pki_mode is not set", "'provided' for", "production"],
            id="mode-not-stated",
        ),
        pytest.param(
            precheck_case("pki", {"pki_mode": "lab", "pki_cert_renew_days": 400}),
            ["pki_cert_renew_days (400)", "pki_cert_valid_days (397)"],
            id="renew-window-longer-than-validity",
        ),
        pytest.param(
            precheck_case(
                "pki", {"pki_mode": "lab", "pki_extra_names": ["nmpi.example.org", "not a name"]}
            ),
            ["pki_extra_names", "not a name"],
            id="extra-name-format",
        ),
        pytest.param(
            precheck_case("etcd", {"etcd_heartbeat_interval": 500, "etcd_election_timeout": 1000}),
            ["etcd_election_timeout", "500 /", "1000 ms"],
            id="election-timeout-below-five-heartbeats",
        ),
        pytest.param(
            precheck_case("etcd", {"etcd_data_dir": "srv/etcd"}),
            ["etcd_data_dir", "absolute", "srv/etcd"],
            id="relative-data-dir",
        ),
        pytest.param(
            precheck_case("etcd", {}),
            ["group 'etcd'", "localhost must be one of them"],
            id="host-not-in-group",
        ),
        pytest.param(
            precheck_case("patroni", {**PASSWORDS, "patroni_app_password": "short"}),
            ["patroni_app_password", "at least 12"],
            id="short-password",
        ),
        pytest.param(
            precheck_case(
                "patroni", {k: v for k, v in PASSWORDS.items() if k != "patroni_rewind_password"}
            ),
            ["patroni_rewind_password", "ansible-vault"],
            id="missing-password",
        ),
        pytest.param(
            precheck_case(
                "patroni", {**PASSWORDS, "patroni_loop_wait": 10, "patroni_retry_timeout": 15}
            ),
            ["loop_wait + 2 * retry_timeout <= ttl", "10 + 2 * 15"],
            id="retry-timeout-too-long-for-ttl",
        ),
        pytest.param(
            precheck_case("patroni", {**PASSWORDS, "patroni_app_user": "replicator"}),
            ["patroni_app_user", "different from each other"],
            id="app-user-is-the-replication-user",
        ),
        pytest.param(
            precheck_case("patroni", {**PASSWORDS, "patroni_monitor_password": ""}),
            ["patroni_monitor_password", "ansible-vault"],
            id="missing-monitor-password",
        ),
        pytest.param(
            precheck_case("patroni", {**PASSWORDS, "patroni_monitor_user": "nmpi"}),
            ["patroni_monitor_user", "different from each other"],
            id="monitor-user-is-the-app-user",
        ),
        pytest.param(
            precheck_case("patroni", {**PASSWORDS, "patroni_monitor_user": "pg_monitor"}),
            ["patroni_monitor_user", "pg_"],
            id="monitor-user-is-reserved",
        ),
        pytest.param(
            precheck_case("patroni", {**PASSWORDS, "patroni_app_cidrs": ["10.10.0.0"]}),
            ["patroni_app_cidrs", "10.10.0.0"],
            id="app-source-not-a-cidr",
        ),
        pytest.param(
            precheck_case("patroni", {**PASSWORDS}),
            ["group 'db'", "localhost must be one of them"],
            id="host-not-in-group",
        ),
    ],
)
def test_bad_variable_is_named(
    case: PrecheckCase, expected: list[str], precheck: PrecheckRunner
) -> None:
    rc, out = precheck(case)
    assert rc != 0, out[-3000:]
    for text in expected:
        assert text in out, f"{text!r} not in output:\n{out[-3000:]}"


def test_patroni_passwords_never_printed(precheck: PrecheckRunner) -> None:
    result = precheck.result(PATRONI_PASSWORD_NOT_PRINTED)
    assert result.rc != 0
    # Not in the case's results (every one, even those not shown), nor anywhere in the run.
    assert SECRET not in result.everything
