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


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "nmpi_urls": urls,
            "nmpi_etcd_hosts_for_site": etcd_hosts_for_site,
            "nmpi_database_hosts": database_hosts,
        }
