"""failover_daemon's precheck: a valid inventory passes, each mistake fails naming its variable."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from tests.support import PrecheckCase, PrecheckRunner, precheck_case

SECRET = base64.b64encode(b"not a real secret, for the precheck only").decode()
PEM = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----"

VALID: dict[str, Any] = {
    "failover_daemon_sites": [
        {
            "name": "castor",
            "probe_url": "https://192.0.2.10/readyz",
            "address": "192.0.2.10",
            "server_name": "nmpi.example.org",
            "ca_cert": PEM,
            "patroni_urls": ["http://10.10.0.11:8008"],
            "db_members": ["castor-db-1"],
            "floating_ip": {
                "cloud": "castor",
                "web_vms": [
                    {"name": "castor-web-1", "probe_url": "https://10.10.0.21/readyz"},
                    {"name": "castor-web-2", "probe_url": "https://10.10.0.22/readyz"},
                ],
            },
        },
        {
            "name": "jusuf",
            "probe_url": "https://198.51.100.10/readyz",
            "address": "198.51.100.10",
            "ca_file": "/etc/ssl/certs/ca-certificates.crt",
            "patroni_urls": ["http://10.20.0.11:8008"],
            "db_members": ["jusuf-db-1"],
        },
    ],
    "failover_daemon_preferred_site": "castor",
    "failover_daemon_dns_record": "nmpi.example.org.",
    "failover_daemon_dns_zone": "example.org.",
    "failover_daemon_rfc2136_server": "10.30.0.53",
    "failover_daemon_tsig_secret": SECRET,
    "failover_daemon_clouds": {"castor": {"auth": {"auth_url": "https://castor:5000/v3"}}},
    "failover_daemon_etcd_endpoints": ["http://10.10.0.11:2379", "http://10.20.0.11:2379"],
}


def with_changes(**changes: Any) -> PrecheckCase:
    variables = copy.deepcopy(VALID)
    for name, value in changes.items():
        variables[f"failover_daemon_{name}"] = value
    return precheck_case("failover_daemon", variables)


def site_change(index: int, **changes: Any) -> PrecheckCase:
    variables = copy.deepcopy(VALID)
    variables["failover_daemon_sites"][index].update(changes)
    return precheck_case("failover_daemon", variables)


# The key is made at run time: no key-like text in the repository.
ARMOUR = "PRIVATE" + " KEY-----"
KEY = f"-----BEGIN {ARMOUR}\nnot-a-real-key-for-the-precheck\n-----END {ARMOUR}"
VALID_CASE = precheck_case("failover_daemon", VALID)
PATRONI_TLS = with_changes(
    patroni_ca_cert=PEM, patroni_client_cert=PEM, patroni_client_key="not checked here"
)
DESIGNATE = with_changes(
    dns_provider="designate",
    designate_cloud="witness",
    tsig_secret="",
    clouds={"castor": {}, "witness": {}},
)
PROBE_TIMEOUT_TOO_LONG = with_changes(probe_timeout=5.0)
CLIENT_KEY_WITHOUT_CERT = with_changes(patroni_client_key=KEY)


def test_a_valid_inventory_passes(precheck: PrecheckRunner) -> None:
    rc, out = precheck(VALID_CASE)
    assert rc == 0, out[-3000:]


def test_patroni_tls_passes(precheck: PrecheckRunner) -> None:
    rc, out = precheck(PATRONI_TLS)
    assert rc == 0, out[-3000:]


def test_designate_passes_without_a_tsig_secret(precheck: PrecheckRunner) -> None:
    rc, out = precheck(DESIGNATE)
    assert rc == 0, out[-3000:]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            with_changes(sites=VALID["failover_daemon_sites"][:1]),
            ["failover_daemon_sites", "exactly two", "got 1"],
            id="one-site",
        ),
        pytest.param(
            with_changes(preferred_site="castro"),
            ["failover_daemon_preferred_site", "castro"],
            id="preferred-site-not-a-site",
        ),
        pytest.param(
            with_changes(probe_timeout=2.0),
            ["failover_daemon_probe_timeout", "failover_daemon_interval"],
            id="probe-timeout-not-below-interval",
        ),
        pytest.param(
            with_changes(etcd_lease_ttl=3),
            ["failover_daemon_etcd_lease_ttl"],
            id="lease-shorter-than-two-intervals",
        ),
        pytest.param(
            with_changes(tsig_secret=""),
            ["failover_daemon_tsig_secret", "is empty", "ansible-vault"],
            id="no-tsig-secret",
        ),
        pytest.param(
            with_changes(tsig_secret="not base64!"),
            ["failover_daemon_tsig_secret", "not base64"],
            id="tsig-secret-not-base64",
        ),
        pytest.param(
            with_changes(dns_record="nmpi.example.com."),
            ["failover_daemon_dns_record", "failover_daemon_dns_zone"],
            id="record-outside-zone",
        ),
        pytest.param(
            site_change(1, probe_url="http://198.51.100.10/readyz"),
            ["failover_daemon_sites[1]", "probe_url", "http://198.51.100.10/readyz"],
            id="probe-url-not-https",
        ),
        pytest.param(
            site_change(0, name="Castor"),
            ["failover_daemon_sites[0]", "Castor"],
            id="site-name-format",
        ),
        pytest.param(
            site_change(1, db_members=["castor-db-1"]),
            ["failover_daemon_sites", "db_members"],
            id="shared-db-member",
        ),
        pytest.param(
            site_change(0, floating_ip={"cloud": "nowhere", "web_vms": []}),
            ["failover_daemon_sites[0].floating_ip", "nowhere", "failover_daemon_clouds"],
            id="floating-ip-unknown-cloud",
        ),
        pytest.param(
            site_change(0, patroni_url=["http://10.10.0.11:8008"]),
            ["failover_daemon_sites", "patroni_url"],
            id="unknown-site-key",
        ),
        pytest.param(
            with_changes(dns_provider="route53"),
            ["failover_daemon_dns_provider", "route53"],
            id="provider-not-a-choice",
        ),
        pytest.param(
            with_changes(metrics_listen="localhost:9469"),
            ["failover_daemon_metrics_listen", "localhost:9469"],
            id="metrics-listen-host-not-ip",
        ),
        pytest.param(
            with_changes(etcd_endpoints=[]),
            ["failover_daemon_etcd_endpoints"],
            id="no-etcd-endpoints",
        ),
        pytest.param(
            with_changes(patroni_client_cert=PEM),
            ["failover_daemon_patroni_client_cert", "failover_daemon_patroni_client_key"],
            id="patroni-cert-without-key",
        ),
        pytest.param(
            with_changes(patroni_client_key=PEM),
            ["failover_daemon_patroni_client_cert", "failover_daemon_patroni_client_key"],
            id="patroni-key-without-cert",
        ),
        pytest.param(
            with_changes(patroni_ca_file="/etc/nmpi/pki/ca.crt"),
            ["failover_daemon_patroni_ca_file", "Unknown variable"],
            id="patroni-typo-in-name",
        ),
        pytest.param(
            with_changes(intervall=3),
            ["failover_daemon_intervall", "Unknown variable"],
            id="typo-in-name",
        ),
    ],
)
def test_a_bad_inventory_names_the_variable(
    case: PrecheckCase, expected: list[str], precheck: PrecheckRunner
) -> None:
    rc, out = precheck(case)
    assert rc != 0, out[-3000:]
    for text in expected:
        assert text in out, f"{text!r} not in output:\n{out[-3000:]}"


def test_the_secret_never_appears_in_precheck_output(precheck: PrecheckRunner) -> None:
    result = precheck.result(PROBE_TIMEOUT_TOO_LONG)
    assert result.rc != 0
    # Not in any result of the case (those not shown too) nor anywhere in the run's output.
    assert SECRET not in result.everything


def test_the_patroni_client_key_never_appears_in_precheck_output(
    precheck: PrecheckRunner,
) -> None:
    result = precheck.result(CLIENT_KEY_WITHOUT_CERT)
    assert result.rc != 0
    assert "failover_daemon_patroni_client_cert" in result.output
    assert "not-a-real-key-for-the-precheck" not in result.everything
