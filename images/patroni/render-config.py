#!/opt/patroni/bin/python3
"""Write Patroni's YAML configuration from NMPI_* / PATRONI_* environment variables.

Runs with the image's Patroni venv (PyYAML comes with Patroni). The format is Patroni 4.x's.

Required: PATRONI_NAME (member name, e.g. castor-db-1), NMPI_CONNECT_ADDRESS (the IP or name the
other members and the clients reach this member at), NMPI_ETCD_HOSTS (host:port,... of every
etcd member), NMPI_SUPERUSER_PASSWORD, NMPI_REPLICATION_PASSWORD, NMPI_DB_PASSWORD.
Optional (default): PATRONI_SCOPE (nmpi), NMPI_SITE (tag "site" of this member, unset: none),
NMPI_DB_NAME (nmpi), NMPI_DB_USER (nmpi; the application role made at bootstrap),
NMPI_PATRONI_TTL (20), NMPI_PATRONI_LOOP_WAIT (2), NMPI_PATRONI_RETRY_TIMEOUT (6),
NMPI_SYNCHRONOUS_MODE (true), NMPI_SYNCHRONOUS_MODE_STRICT (false),
NMPI_MAXIMUM_LAG_ON_FAILOVER (1048576 bytes), NMPI_CLIENT_NETWORKS (0.0.0.0/0: pg_hba sources,
comma-separated), NMPI_PATRONI_LOG_LEVEL (INFO).
The bootstrap.dcs part only counts when the cluster is first initialised (then it lives in
etcd); everything else is read at every start. Any PATRONI_* variable still overrides.
"""

from __future__ import annotations

import os
import sys

import yaml


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        sys.exit(f"nmpi-patroni-config: {name} is required")
    return value


def flag(name: str, default: str) -> bool:
    value = env(name, default).lower()
    if value not in ("true", "false", "on", "off", "1", "0", "yes", "no"):
        sys.exit(f"nmpi-patroni-config: {name} must be true or false, got {value!r}")
    return value in ("true", "on", "1", "yes")


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "/var/lib/postgresql/patroni.yml"
    name = env("PATRONI_NAME")
    address = env("NMPI_CONNECT_ADDRESS")
    etcd_hosts = [h.strip() for h in env("NMPI_ETCD_HOSTS").split(",") if h.strip()]
    # Passwords are checked here; post-bootstrap reads NMPI_DB_PASSWORD itself.
    env("NMPI_DB_PASSWORD")
    ttl = int(env("NMPI_PATRONI_TTL", "20"))
    loop_wait = int(env("NMPI_PATRONI_LOOP_WAIT", "2"))
    retry_timeout = int(env("NMPI_PATRONI_RETRY_TIMEOUT", "6"))
    if loop_wait + 2 * retry_timeout > ttl:
        sys.exit("nmpi-patroni-config: loop_wait + 2 * retry_timeout must not exceed ttl")
    networks = [n.strip() for n in env("NMPI_CLIENT_NETWORKS", "0.0.0.0/0").split(",")]
    hba = ["local all all trust", "host all all 127.0.0.1/32 scram-sha-256"]
    hba += [f"host replication replicator {n} scram-sha-256" for n in networks]
    hba += [f"host all all {n} scram-sha-256" for n in networks]
    # Both members may lead (no nofailover): castor is preferred only by starting first.
    tags: dict[str, object] = {"nofailover": False, "noloadbalance": False, "clonefrom": False}
    site = os.environ.get("NMPI_SITE")
    if site:
        tags["site"] = site
    config = {
        "scope": env("PATRONI_SCOPE", "nmpi"),
        "name": name,
        "log": {"level": env("NMPI_PATRONI_LOG_LEVEL", "INFO")},
        "restapi": {"listen": "0.0.0.0:8008", "connect_address": f"{address}:8008"},
        "etcd3": {"hosts": etcd_hosts, "protocol": "http"},
        "bootstrap": {
            "dcs": {
                "ttl": ttl,
                "loop_wait": loop_wait,
                "retry_timeout": retry_timeout,
                "maximum_lag_on_failover": int(env("NMPI_MAXIMUM_LAG_ON_FAILOVER", "1048576")),
                "synchronous_mode": flag("NMPI_SYNCHRONOUS_MODE", "true"),
                "synchronous_mode_strict": flag("NMPI_SYNCHRONOUS_MODE_STRICT", "false"),
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": {
                        "wal_level": "replica",
                        "hot_standby": "on",
                        "wal_log_hints": "on",
                        "max_connections": 100,
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_keep_size": "128MB",
                        "password_encryption": "scram-sha-256",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
            "post_bootstrap": "/usr/local/bin/nmpi-post-bootstrap",
        },
        "postgresql": {
            "listen": "0.0.0.0:5432",
            "connect_address": f"{address}:5432",
            "data_dir": "/var/lib/postgresql/data/pgdata",
            "bin_dir": "/usr/lib/postgresql/15/bin",
            "pgpass": "/tmp/pgpass",
            "pg_hba": hba,
            # A new replica's pg_basebackup asks for an immediate checkpoint, not a spread one
            # (which would keep it waiting for most of checkpoint_timeout on an idle primary).
            "basebackup": [{"checkpoint": "fast"}],
            "authentication": {
                "superuser": {
                    "username": "postgres",
                    "password": env("NMPI_SUPERUSER_PASSWORD"),
                },
                "replication": {
                    "username": "replicator",
                    "password": env("NMPI_REPLICATION_PASSWORD"),
                },
            },
            "parameters": {"unix_socket_directories": "/var/run/postgresql"},
        },
        "watchdog": {"mode": "off"},
        "tags": tags,
    }
    with open(path, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        yaml.safe_dump(config, out, sort_keys=False)


if __name__ == "__main__":
    main()
