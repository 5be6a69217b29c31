"""security_group_rules: the security policy of playbooks/provision.yml expanded for one site.

The policy names its sources ("site": the location's own network, "peers": the other
locations' floating IP ranges) instead of addresses; the inventory gives the addresses.
Every group also gets SSH from the operators' ranges.
"""

from __future__ import annotations

from typing import Any


def security_groups(
    policy: dict[str, list[dict[str, Any]]],
    site: str,
    sources: dict[str, list[str]],
    admin_cidrs: list[str],
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
            cidrs = [cidr for name in names for cidr in sources[name]] or [rule["remote_ip_prefix"]]
            base = {k: v for k, v in rule.items() if k not in ("sources", "remote_ip_prefix")}
            expanded += [{**base, "remote_ip_prefix": cidr} for cidr in cidrs]
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
