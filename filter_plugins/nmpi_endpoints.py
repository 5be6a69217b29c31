"""Endpoints computed from the inventory: who reaches which service at which address and port.

The ports come from one place (`nmpi_ports`, playbooks/group_vars/all/ports.yml) and the
addresses from each host's variables (nmpi_public_ip, nmpi_private_ip, ...), so that the
etcd endpoints of nmpi-failover, the Patroni REST URLs of its sites, Patroni's DCS list and the
API's database hosts are written once, here, and tested (tests/unit/test_nmpi_endpoints.py).

A host's address is the first of `address_keys` it has a non-empty value for, else its
default IPv4 address (gathered facts), else MISSING (which the roles' prechecks refuse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MISSING = "MISSING"


def host_address(
    hostvars: Mapping[str, Any], host: str, address_keys: Sequence[str] = ("nmpi_private_ip",)
) -> str:
    """The address `host` is reached at: the first set variable of `address_keys`."""
    variables = hostvars[host]
    for key in address_keys:
        value = variables.get(key) if key in variables else None
        if value:
            return str(value)
    facts = (variables.get("ansible_facts") if "ansible_facts" in variables else None) or {}
    return str((facts.get("default_ipv4") or {}).get("address") or MISSING)


def _host_port(address: str, port: int | str) -> str:
    return f"{address}:{int(port)}"


def urls(
    hosts: Sequence[str],
    hostvars: Mapping[str, Any],
    port: int | str,
    scheme: str = "https",
    address_keys: Sequence[str] = ("nmpi_public_ip",),
) -> list[str]:
    """`scheme://address:port` of each host, in the given order."""
    return [
        f"{scheme}://{_host_port(host_address(hostvars, h, address_keys), port)}" for h in hosts
    ]


def etcd_hosts_for_site(
    etcd_hosts: Sequence[str],
    hostvars: Mapping[str, Any],
    own_site: str,
    database_sites: Sequence[str],
    port: int | str,
    address_keys: Sequence[str] = ("nmpi_private_ip",),
) -> list[str]:
    """Patroni's DCS list (host:port) for a member at `own_site`.

    The etcd members at its own site first, then those at locations that hold no database
    member (the witness); never the other database site's, as long as both groups are there.
    Patroni watches the leader key through one member: a watch on a member cut off with the
    other site goes silent until TCP gives up, so a standby watching it would promote up to
    ttl late (roles/patroni/vars/main.yml). Without sites: every member, in inventory order.
    """
    own: list[str] = []
    neutral: list[str] = []
    other: list[str] = []
    for host in etcd_hosts:
        variables = hostvars[host]
        site = (variables.get("nmpi_location") if "nmpi_location" in variables else None) or ""
        endpoint = _host_port(host_address(hostvars, host, address_keys), port)
        if site and site == own_site:
            own.append(endpoint)
        elif site and site in database_sites:
            other.append(endpoint)
        else:
            neutral.append(endpoint)
    return own + neutral if own and neutral else own + neutral + other


def database_hosts(
    db_hosts: Sequence[str], hostvars: Mapping[str, Any], own_site: str
) -> list[str]:
    """The database members a client at `own_site` lists: its own site's first, by private
    address, then the other sites', by floating IP (nmpi_public_ip)."""
    own = [
        host_address(hostvars, h, ("nmpi_private_ip",))
        for h in db_hosts
        if hostvars[h].get("nmpi_location") == own_site
    ]
    other = [
        host_address(hostvars, h, ("nmpi_public_ip",))
        for h in db_hosts
        if hostvars[h].get("nmpi_location") != own_site
    ]
    return own + other


def _location(hostvars: Mapping[str, Any], host: str) -> str:
    variables = hostvars[host]
    return str((variables.get("nmpi_location") if "nmpi_location" in variables else None) or "")


def address_from(
    hostvars: Mapping[str, Any], host: str, own_location: str, public: bool = False
) -> str:
    """The address a host at `own_location` reaches `host` at: its private address at the
    same location (the traffic never leaves it), else its floating IP (which the host's
    security groups open to the other locations' ranges they name). `public`: the floating
    IP always, as users reach it. The monitoring server scrapes, and every host ships its
    journal to the log server, this way."""
    location = _location(hostvars, host)
    keys = ("nmpi_private_ip",) if location == own_location and not public else ("nmpi_public_ip",)
    return host_address(hostvars, host, keys)


def scrape_targets(
    hosts: Sequence[str],
    hostvars: Mapping[str, Any],
    own_location: str,
    port: int | str,
    labels: Mapping[str, str] | None = None,
    url: str = "",
    public: bool = False,
    site_label: bool = False,
) -> list[dict[str, Any]]:
    """Prometheus static_configs, one per host, labelled with the host's inventory name
    (`host`) and location (`location`), which the alert rules and dashboards of monitoring/
    group by, plus `labels` (and `site`, the location, with `site_label`).

    The target is `address:port`, or with `url` (a blackbox probe's target) that string with
    `{address}` replaced by `address:port`, e.g. "https://{address}/readyz".
    """
    configs = []
    for h in hosts:
        address = _host_port(address_from(hostvars, h, own_location, public), port)
        location = _location(hostvars, h)
        host_labels = {"host": h, "location": location, **(labels or {})}
        if site_label:
            host_labels["site"] = location
        target = url.replace("{address}", address) if url else address
        configs.append({"targets": [target], "labels": host_labels})
    return configs


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "nmpi_address_from": address_from,
            "nmpi_scrape_targets": scrape_targets,
            "nmpi_urls": urls,
            "nmpi_etcd_hosts_for_site": etcd_hosts_for_site,
            "nmpi_database_hosts": database_hosts,
        }
