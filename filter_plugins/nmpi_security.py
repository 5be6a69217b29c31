"""security_group_rules: the security policy of playbooks/provision.yml expanded for one site.

The policy names its sources ("site": the location's own network, "peers": the other
locations' floating IP ranges) instead of addresses, and its ports by their names in
nmpi_ports (playbooks/group_vars/all/ports.yml) instead of numbers; the inventory gives the
addresses. Ports next to each other become one range (etcd's 2379-2380). Every group also gets
SSH from the operators' ranges.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _port_ranges(
    function: str, names: list[str], ports: Mapping[str, Any]
) -> list[tuple[int, int]]:
    """The named ports as (min, max) ranges, adjacent ports merged."""
    unknown = [name for name in names if name not in ports]
    if unknown:
        raise ValueError(f"security policy of {function}: unknown port name(s) {unknown}")
    ranges: list[tuple[int, int]] = []
    for port in sorted({int(ports[name]) for name in names}):
        if ranges and port == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], port)
        else:
            ranges.append((port, port))
    return ranges


def security_groups(
    policy: dict[str, list[dict[str, Any]]],
    site: str,
    sources: dict[str, list[str]],
    admin_cidrs: list[str],
    ports: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """cloud_security_groups for `site`: one group per function (nmpi-<site>-<function>)."""
    groups = []
    for function, rules in policy.items():
        expanded = []
        for rule in rules:
            names = rule.get("sources", [])
            unknown = [name for name in names if name not in sources]
            if unknown:
                raise ValueError(f"security policy of {function}: unknown source(s) {unknown}")
            # Sources that name no address (e.g. no monitoring server elsewhere) open nothing.
            if "sources" in rule:
                cidrs = [cidr for name in names for cidr in sources[name]]
            else:
                cidrs = [rule["remote_ip_prefix"]]
            base = {
                k: v for k, v in rule.items() if k not in ("sources", "remote_ip_prefix", "ports")
            }
            if "ports" in rule:
                ranges = _port_ranges(function, rule["ports"], ports or {})
            else:
                ranges = [(rule["port_range_min"], rule["port_range_max"])]
            expanded += [
                {**base, "port_range_min": low, "port_range_max": high, "remote_ip_prefix": cidr}
                for low, high in ranges
                for cidr in cidrs
            ]
        expanded += [
            {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": c}
            for c in admin_cidrs
        ]
        name = f"nmpi-{site}-{function}"
        groups.append({"name": name, "description": f"nmpi {function}", "rules": expanded})
    return groups


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"nmpi_security_groups": security_groups}
