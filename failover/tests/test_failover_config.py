"""check-config's loader: each broken config gives exactly its one clear error."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from failover_services import make_ca
from failover_testkit import EXAMPLE, example_data, lab_files
from nmpi_failover.config import ConfigError, load_config, read_secret

Data = dict[str, Any]


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A directory holding examples/lab.yaml and the files it refers to."""
    lab_files(tmp_path)
    (tmp_path / "lab.yaml").write_text(EXAMPLE.read_text())
    return tmp_path


def test_example_config_loads(lab: Path) -> None:
    config = load_config(lab / "lab.yaml")
    assert config.site_names == ("castor", "jusuf")
    assert config.preferred_site == "castor"
    assert config.interval == 2.0
    assert config.dns.record == "nmpi.lab.example."
    assert config.dns.zone == "lab.example."
    assert config.dns.rfc2136 is not None
    secret_file = config.dns.rfc2136.tsig.secret_file
    assert secret_file == lab / "tsig.key"  # relative to the config file
    assert read_secret(secret_file) == b"lab-only-tsig-secret-for-tests!!"
    assert config.site("castor").ca_file == lab / "lab-ca.pem"
    assert config.other_site("castor") == "jusuf"
    assert config.site_of_member("jusuf-db-1") == "jusuf"
    assert config.site_of_member("stranger") is None
    assert config.listen_host_port == ("0.0.0.0", 9469)


def test_defaults_apply(lab: Path) -> None:
    data = example_data()
    for key in ("interval", "probe_timeout", "failures_to_down", "switchover_timeout"):
        del data[key]
    (lab / "minimal.yaml").write_text(yaml.safe_dump(data))
    config = load_config(lab / "minimal.yaml")
    assert (config.interval, config.probe_timeout, config.failures_to_down) == (2.0, 1.5, 3)


def at(data: Data, dotted: str) -> tuple[Any, str | int]:
    """The container holding the last key of `dotted` ("sites.1.probe_url")."""
    *parents, last = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    return node, int(last) if last.isdigit() else last


def put(dotted: str, value: Any) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        node, key = at(data, dotted)
        node[key] = value

    return change


def drop(dotted: str) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        node, key = at(data, dotted)
        del node[key]

    return change


def add_third_site(data: Data) -> None:
    third = copy.deepcopy(data["sites"][1])
    third["name"] = "witness"
    data["sites"].append(third)


def designate_on_castors_cloud(data: Data) -> None:
    data["dns"] = {
        "record": "nmpi.lab.example.",
        "designate": {"cloud": "castor", "zone": "lab.example."},
    }


def both_providers(data: Data) -> None:
    data["dns"]["designate"] = {"cloud": "witness", "zone": "lab.example."}


BROKEN: list[tuple[str, Callable[[Data], None], str]] = [
    ("unknown-key", put("intervall", 3), "intervall: unknown key (did you mean 'interval'?)"),
    (
        "unknown-nested-key",
        put("etcd.ttl", 3),
        "etcd.ttl: unknown key (allowed: ca_file, cert_file, endpoints, "
        "keep_leader_off_database_sites, key, key_file, leader_move_interval, lease_ttl)",
    ),
    (
        "etcd-leader-move-interval-zero",
        put("etcd.leader_move_interval", 0),
        "etcd.leader_move_interval: Input should be greater than 0",
    ),
    (
        "probe-url-not-https",
        put("sites.1.probe_url", "http://198.51.100.10/readyz"),
        "sites[1].probe_url: must be an https:// URL with a host, "
        "got 'http://198.51.100.10/readyz'",
    ),
    (
        "preferred-site-unknown",
        put("preferred_site", "castr"),
        "preferred_site: 'castr' is not one of the sites (castor, jusuf)",
    ),
    (
        "secret-file-missing",
        put("dns.rfc2136.tsig.secret_file", "/nonexistent/tsig.key"),
        "dns.rfc2136.tsig.secret_file: file not found: /nonexistent/tsig.key",
    ),
    (
        "ca-file-missing",
        put("sites.0.ca_file", "missing-ca.pem"),
        "sites[0].ca_file: file not found: {dir}/missing-ca.pem",
    ),
    ("three-sites", add_third_site, "sites: exactly two sites are required, got 3"),
    ("one-site", drop("sites.1"), "sites: exactly two sites are required, got 1"),
    (
        "address-not-ip",
        put("sites.0.address", "castor.example"),
        "sites[0].address: must be an IPv4 or IPv6 address, got 'castor.example'",
    ),
    ("etcd-missing", drop("etcd"), "etcd: required key is missing"),
    (
        "interval-not-a-number",
        put("interval", "2s"),
        "interval: Input should be a valid number, unable to parse string as a number",
    ),
    (
        "failures-to-down-zero",
        put("failures_to_down", 0),
        "failures_to_down: Input should be greater than or equal to 1",
    ),
    (
        "probe-timeout-not-below-interval",
        put("probe_timeout", 2.0),
        "probe_timeout: 2 s must be shorter than interval (2 s), or a round's observation "
        "would be stale",
    ),
    (
        "lease-ttl-too-short",
        put("etcd.lease_ttl", 3),
        "etcd.lease_ttl: 3 s must be at least twice interval (2 s), so one slow round does "
        "not drop the lease",
    ),
    (
        "dns-two-providers",
        both_providers,
        "dns: set exactly one provider: rfc2136 or designate",
    ),
    ("dns-no-provider", drop("dns.rfc2136"), "dns: set exactly one provider: rfc2136 or designate"),
    (
        "record-outside-zone",
        put("dns.record", "nmpi.other.example"),
        "dns.record: nmpi.other.example. is not inside dns.rfc2136.zone lab.example.",
    ),
    (
        "duplicate-site-name",
        put("sites.1.name", "castor"),
        "sites[1].name: 'castor' is already the name of sites[0]",
    ),
    (
        "bad-site-name",
        put("sites.0.name", "Castor"),
        "sites[0].name: must be lower-case letters, digits and '-', starting with a letter, "
        "got 'Castor'",
    ),
    (
        "same-address-twice",
        put("sites.1.address", "192.0.2.10"),
        "sites[1].address: 192.0.2.10 is already the address of sites[0]",
    ),
    (
        "member-at-both-sites",
        put("sites.1.db_members", ["castor-db-1"]),
        "sites[1].db_members: castor-db-1 also listed under sites[0].db_members",
    ),
    (
        "tsig-algorithm",
        put("dns.rfc2136.tsig.algorithm", "hmac-md5"),
        "dns.rfc2136.tsig.algorithm: Input should be 'hmac-sha256', 'hmac-sha384', "
        "'hmac-sha512' or 'hmac-sha224'",
    ),
    (
        "metrics-listen",
        put("metrics_listen", "9469"),
        "metrics_listen: must be HOST:PORT with a port 1-65535, got '9469'",
    ),
    (
        "etcd-endpoint",
        put("etcd.endpoints", ["10.10.0.11:2379"]),
        "etcd.endpoints: must be an http:// or https:// URL with a host, got '10.10.0.11:2379'",
    ),
    (
        "single-web-vm",
        drop("sites.0.floating_ip.web_vms.1"),
        "sites[0].floating_ip.web_vms: at least two web VMs are needed to move the floating "
        "IP, got 1",
    ),
    (
        "site-not-a-mapping",
        put("sites.0", "castor"),
        "sites[0]: must be a mapping of keys, got str",
    ),
    (
        "designate-on-a-site-cloud",
        designate_on_castors_cloud,
        "dns.designate.cloud: 'castor' is also sites[0].floating_ip.cloud; moving the name "
        "must not need a site's API",
    ),
    (
        "cert-without-key",
        put("etcd.cert_file", "lab-ca.pem"),
        "etcd.key_file: required when the other of etcd.cert_file/etcd.key_file is set",
    ),
    ("ttl-zero", put("dns.ttl", 0), "dns.ttl: Input should be greater than or equal to 1"),
    (
        "patroni-not-a-mapping",
        put("patroni", "tls"),
        "patroni: must be a mapping of keys, got str",
    ),
    (
        "patroni-unknown-key",
        put("patroni", {"cafile": "lab-ca.pem"}),
        "patroni.cafile: unknown key (did you mean 'ca_file'?)",
    ),
    (
        "patroni-ca-file-missing",
        put("patroni", {"ca_file": "missing-ca.pem"}),
        "patroni.ca_file: file not found: {dir}/missing-ca.pem",
    ),
    (
        "patroni-ca-file-not-pem",
        put("patroni", {"ca_file": "lab-ca.pem"}),
        "patroni.ca_file: not a PEM CA certificate bundle (NO_CERTIFICATE_OR_CRL_FOUND): "
        "{dir}/lab-ca.pem",
    ),
    (
        "patroni-cert-without-key",
        put("patroni", {"cert_file": "lab-ca.pem"}),
        "patroni.key_file: required when the other of patroni.cert_file/patroni.key_file is set",
    ),
    (
        "patroni-key-without-cert",
        put("patroni", {"key_file": "tsig.key"}),
        "patroni.cert_file: required when the other of patroni.cert_file/patroni.key_file is set",
    ),
    (
        "patroni-key-file-missing",
        put("patroni", {"cert_file": "lab-ca.pem", "key_file": "/nonexistent/client.key"}),
        "patroni.key_file: file not found: /nonexistent/client.key",
    ),
    (
        "patroni-cert-not-pem",
        put("patroni", {"cert_file": "lab-ca.pem", "key_file": "lab-ca.pem"}),
        "patroni.cert_file: cannot be loaded with patroni.key_file ([SSL] PEM lib; a PEM "
        "certificate and its own unencrypted PEM key are needed): {dir}/lab-ca.pem, "
        "{dir}/lab-ca.pem",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_config_gives_its_one_error(
    lab: Path, change: Callable[[Data], None], expected: str
) -> None:
    data = example_data()
    change(data)
    path = lab / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == [expected.format(dir=lab)]


def test_patroni_tls_section_loads_relative_to_the_config(lab: Path) -> None:
    ca = make_ca(lab / "tls")
    data = example_data()
    data["patroni"] = {
        "ca_file": "tls/ca.pem",
        "cert_file": "tls/ca-client.pem",
        "key_file": str(ca.client_key_file),
    }
    (lab / "tls.yaml").write_text(yaml.safe_dump(data))
    config = load_config(lab / "tls.yaml")
    assert config.patroni.ca_file == ca.ca_file
    assert config.patroni.cert_file == ca.client_cert_file
    assert config.patroni.key_file == ca.client_key_file


def test_without_a_patroni_section_nothing_changes(lab: Path) -> None:
    config = load_config(lab / "lab.yaml")
    assert (config.patroni.ca_file, config.patroni.cert_file, config.patroni.key_file) == (
        None,
        None,
        None,
    )


def client_certificate_problems(lab: Path, cert_file: Path, key_file: Path) -> list[str]:
    data = example_data()
    data["patroni"] = {"cert_file": str(cert_file), "key_file": str(key_file)}
    (lab / "tls.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as raised:
        load_config(lab / "tls.yaml")
    return raised.value.problems


def test_patroni_client_key_of_another_certificate(lab: Path) -> None:
    ca = make_ca(lab / "tls")
    problems = client_certificate_problems(lab, ca.client_cert_file, ca.key_file)
    assert problems == [
        "patroni.cert_file: cannot be loaded with patroni.key_file (KEY_VALUES_MISMATCH; a PEM "
        f"certificate and its own unencrypted PEM key are needed): {ca.client_cert_file}, "
        f"{ca.key_file}"
    ]


def test_patroni_encrypted_client_key_is_refused_without_asking_for_a_password(
    lab: Path,
) -> None:
    ca = make_ca(lab / "tls", key_password=b"never-given-to-the-daemon")
    problems = client_certificate_problems(lab, ca.client_cert_file, ca.client_key_file)
    assert problems == [
        "patroni.cert_file: cannot be loaded with patroni.key_file ([SSL] PEM lib; a PEM "
        f"certificate and its own unencrypted PEM key are needed): {ca.client_cert_file}, "
        f"{ca.client_key_file}"
    ]


@pytest.mark.parametrize(
    ("mode", "content", "expected"),
    [
        pytest.param(
            0o644,
            "c2VjcmV0\n",
            "readable by every user (mode 0644); restrict it, e.g. chmod 0600 {path}",
            id="world-readable",
        ),
        pytest.param(
            0o600, "not base64!\n", "does not hold a base64 TSIG secret: {path}", id="b64"
        ),
        pytest.param(0o600, "\n", "is empty: {path}", id="empty"),
    ],
)
def test_broken_secret_file(lab: Path, mode: int, content: str, expected: str) -> None:
    secret = lab / "tsig.key"
    secret.write_text(content)
    secret.chmod(mode)
    with pytest.raises(ConfigError) as raised:
        load_config(lab / "lab.yaml")
    reason = expected.format(path=secret)
    assert raised.value.problems == [f"dns.rfc2136.tsig.secret_file: {reason}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "sites:\n  - name: castor\n   probe_url: x\n",
            "line 3, column 4: expected <block end>, but found '<block mapping start>'",
            id="bad-indent",
        ),
        pytest.param(
            "interval: 2\nprobe_timeout: 1\ninterval: 3\n",
            "line 3, column 1: duplicate key 'interval'",
            id="duplicate-key",
        ),
        pytest.param("- castor\n- jusuf\n", "must be a mapping of keys, got list", id="list"),
        pytest.param("", "must be a mapping of keys, got empty", id="empty"),
    ],
)
def test_unparsable_yaml(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    [problem] = raised.value.problems
    assert problem.endswith(expected)
    prefix = "(top level)" if expected.startswith("must be a mapping") else str(path)
    assert problem.startswith(prefix)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file or directory"):
        load_config(tmp_path / "absent.yaml")


def test_every_problem_is_listed(lab: Path) -> None:
    data = example_data()
    put("sites.0.probe_url", "ftp://x")(data)
    put("sites.1.address", "nope")(data)
    put("dns.rfc2136.port", 70000)(data)
    (lab / "broken.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as raised:
        load_config(lab / "broken.yaml")
    keys = [p.split(":")[0] for p in raised.value.problems]
    assert keys == ["sites[0].probe_url", "sites[1].address", "dns.rfc2136.port"]
    assert str(raised.value).count("\n") == 2  # one problem per line
