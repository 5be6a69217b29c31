"""filter_plugins: the endpoints computed from the inventory and the security policy's ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from filter_plugins.nmpi_endpoints import (
    address_from,
    database_hosts,
    etcd_hosts_for_site,
    host_address,
    scrape_targets,
    urls,
)
from filter_plugins.nmpi_security import security_groups

REPO = Path(__file__).resolve().parents[2]

HOSTVARS: dict[str, dict[str, Any]] = {
    "castor-db-1": {
        "nmpi_location": "castor",
        "nmpi_public_ip": "203.0.113.12",
        "nmpi_private_ip": "10.10.0.11",
    },
    "jusuf-db-1": {
        "nmpi_location": "jusuf",
        "nmpi_public_ip": "198.51.100.22",
        "nmpi_private_ip": "10.20.0.11",
    },
    "witness-1": {
        "nmpi_location": "witness",
        "nmpi_public_ip": "192.0.2.31",
        "nmpi_private_ip": "10.30.0.11",
    },
}
ETCD = ["castor-db-1", "jusuf-db-1", "witness-1"]


def test_urls_use_the_public_address_and_the_port() -> None:
    assert urls(ETCD, HOSTVARS, 2379) == [
        "https://203.0.113.12:2379",
        "https://198.51.100.22:2379",
        "https://192.0.2.31:2379",
    ]
    assert urls(["jusuf-db-1"], HOSTVARS, "8008", scheme="http") == ["http://198.51.100.22:8008"]


def test_host_address_falls_back_to_the_default_ipv4_address_then_missing() -> None:
    hostvars = {
        "a": {"nmpi_private_ip": "", "ansible_facts": {"default_ipv4": {"address": "172.17.0.2"}}},
        "b": {},
    }
    assert host_address(hostvars, "a") == "172.17.0.2"
    assert host_address(hostvars, "b") == "MISSING"


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        # Own site first, then the witness; never the other database site.
        ("castor", ["10.10.0.11:2379", "10.30.0.11:2379"]),
        ("jusuf", ["10.20.0.11:2379", "10.30.0.11:2379"]),
        # No member at its own site: every member, the neutral ones before the others.
        ("elsewhere", ["10.30.0.11:2379", "10.10.0.11:2379", "10.20.0.11:2379"]),
    ],
)
def test_patroni_reaches_etcd_at_its_own_site_and_the_witness(
    site: str, expected: list[str]
) -> None:
    assert etcd_hosts_for_site(ETCD, HOSTVARS, site, ["castor", "jusuf"], 2379) == expected


def test_patroni_etcd_hosts_without_sites_are_every_member_in_order() -> None:
    hostvars = {h: {"nmpi_private_ip": f"10.0.0.{i}"} for i, h in enumerate(ETCD, 1)}
    assert etcd_hosts_for_site(ETCD, hostvars, "", [], 2379) == [
        "10.0.0.1:2379",
        "10.0.0.2:2379",
        "10.0.0.3:2379",
    ]


def test_patroni_etcd_hosts_at_the_public_addresses() -> None:
    assert etcd_hosts_for_site(
        ETCD, HOSTVARS, "castor", ["castor", "jusuf"], 2379, ["nmpi_public_ip"]
    ) == ["203.0.113.12:2379", "192.0.2.31:2379"]


def test_database_hosts_own_site_private_first_then_the_others_public() -> None:
    db = ["castor-db-1", "jusuf-db-1"]
    assert database_hosts(db, HOSTVARS, "castor") == ["10.10.0.11", "198.51.100.22"]
    assert database_hosts(db, HOSTVARS, "jusuf") == ["10.20.0.11", "203.0.113.12"]


def _policy_and_ports() -> tuple[dict[str, Any], dict[str, Any]]:
    provision = yaml.safe_load((REPO / "playbooks" / "provision.yml").read_text())
    play = next(p for p in provision if "provision_security_groups" in p.get("vars", {}))
    ports = yaml.safe_load((REPO / "playbooks" / "group_vars" / "all" / "ports.yml").read_text())
    return play["vars"]["provision_security_groups"], ports["nmpi_ports"]


def test_the_security_policy_opens_the_services_ports() -> None:
    policy, ports = _policy_and_ports()
    sources = {
        "site": ["10.10.0.0/24"],
        "site_public": ["203.0.113.0/24"],
        "peers": ["198.51.100.0/24"],
        "admin": ["192.0.2.0/28"],
        "monitoring": ["192.0.2.128/25"],
    }
    groups = {
        g["name"]: g["rules"]
        for g in security_groups(policy, "castor", sources, ["192.0.2.0/28"], ports)
    }
    opened = {
        name: sorted({(r["protocol"], r["port_range_min"], r["port_range_max"]) for r in rules})
        for name, rules in groups.items()
    }
    assert opened == {
        "nmpi-castor-web": [
            ("tcp", 22, 22),
            ("tcp", 443, 443),
            ("tcp", 9100, 9100),
            ("tcp", 9444, 9444),
        ],
        "nmpi-castor-db": [
            ("tcp", 22, 22),
            ("tcp", 2379, 2380),
            ("tcp", 5432, 5432),
            ("tcp", 8008, 8008),
            ("tcp", 8432, 8432),
            ("tcp", 9100, 9100),
            ("tcp", 9187, 9187),
            ("tcp", 9444, 9444),
        ],
        "nmpi-castor-witness": [
            ("tcp", 22, 22),
            ("tcp", 53, 53),
            ("tcp", 2379, 2380),
            ("tcp", 8432, 8432),
            ("tcp", 9090, 9090),
            ("tcp", 9093, 9093),
            ("tcp", 19532, 19532),
            ("udp", 53, 53),
        ],
        "nmpi-castor-hardware_sites": [
            ("tcp", 22, 22),
            ("tcp", 8443, 8443),
            ("tcp", 9100, 9100),
            ("tcp", 9444, 9444),
        ],
    }
    # Exporters admit the monitoring server alone; its UIs the operators alone.
    for group in ("nmpi-castor-web", "nmpi-castor-db", "nmpi-castor-hardware_sites"):
        exporter = [r for r in groups[group] if r["port_range_min"] in (9100, 9187, 9444)]
        assert exporter
        assert {r["remote_ip_prefix"] for r in exporter} == {"192.0.2.128/25"}
    uis = [r for r in groups["nmpi-castor-witness"] if r["port_range_min"] in (9090, 9093)]
    assert {r["remote_ip_prefix"] for r in uis} == {"192.0.2.0/28"}
    # The other locations ship their journals to the log server; so does a location in the
    # witness's own region (the lab's hardware sites: its floating IP range).
    logs = [r for r in groups["nmpi-castor-witness"] if r["port_range_min"] == 19532]
    assert [r["remote_ip_prefix"] for r in logs] == ["203.0.113.0/24", "198.51.100.0/24"]
    # pgBackRest's servers: the repository at the witness and the members reach each other
    # across locations only (their floating IPs), never from anywhere else.
    for group in ("nmpi-castor-db", "nmpi-castor-witness"):
        backups = [r for r in groups[group] if r["port_range_min"] == 8432]
        assert [r["remote_ip_prefix"] for r in backups] == ["198.51.100.0/24"]
    # Users download their jobs' outputs from the hardware sites.
    outputs = [r for r in groups["nmpi-castor-hardware_sites"] if r["port_range_min"] == 8443]
    assert [r["remote_ip_prefix"] for r in outputs] == ["0.0.0.0/0"]
    # At the monitoring server's own location there is no source: no exporter rule at all.
    local = security_groups(policy, "witness", {**sources, "monitoring": []}, [], ports)
    assert not [r for g in local for r in g["rules"] if r["port_range_min"] == 9100]
    etcd_rules = [r for r in groups["nmpi-castor-db"] if r["port_range_min"] == 2379]
    assert [r["remote_ip_prefix"] for r in etcd_rules] == [
        "10.10.0.0/24",
        "203.0.113.0/24",
        "198.51.100.0/24",
    ]
    assert list(etcd_rules[0]) == [
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
    ]


def test_ports_that_are_not_adjacent_stay_separate_rules() -> None:
    policy = {
        "db": [{"protocol": "tcp", "ports": ["a", "b", "c"], "remote_ip_prefix": "0.0.0.0/0"}]
    }
    (group,) = security_groups(policy, "castor", {}, [], {"a": 5432, "b": 2380, "c": 2379})
    assert [(r["port_range_min"], r["port_range_max"]) for r in group["rules"]] == [
        (2379, 2380),
        (5432, 5432),
    ]


def test_an_unknown_port_name_is_refused() -> None:
    policy = {"db": [{"protocol": "tcp", "ports": ["postgres"], "remote_ip_prefix": "0.0.0.0/0"}]}
    with pytest.raises(
        ValueError, match=r"security policy of db: unknown port name\(s\) \['postgres'\]"
    ):
        security_groups(policy, "castor", {}, [], {"postgresql": 5432})


def test_scrape_targets_label_each_host_and_reach_other_locations_by_floating_ip() -> None:
    targets = scrape_targets(ETCD, HOSTVARS, "witness", 9100)
    assert targets == [
        {"targets": ["203.0.113.12:9100"], "labels": {"host": "castor-db-1", "location": "castor"}},
        {"targets": ["198.51.100.22:9100"], "labels": {"host": "jusuf-db-1", "location": "jusuf"}},
        # The monitoring server's own location: the private address, never leaving it.
        {"targets": ["10.30.0.11:9100"], "labels": {"host": "witness-1", "location": "witness"}},
    ]
    extra = scrape_targets(["castor-db-1"], HOSTVARS, "witness", "8008", {"site": "castor"})
    assert extra[0]["labels"] == {"host": "castor-db-1", "location": "castor", "site": "castor"}
    assert address_from(HOSTVARS, "jusuf-db-1", "jusuf") == "10.20.0.11"


def test_probe_targets_are_urls_through_the_floating_ip_with_the_site() -> None:
    (probe,) = scrape_targets(
        ["witness-1"],
        HOSTVARS,
        "witness",
        443,
        url="https://{address}/readyz",
        public=True,
        site_label=True,
    )
    assert probe == {
        "targets": ["https://192.0.2.31:443/readyz"],
        "labels": {"host": "witness-1", "location": "witness", "site": "witness"},
    }
