#!/bin/sh
# Render Patroni's configuration from the environment, then exec the command (patroni).
set -eu
if [ "${1:-}" = patroni ]; then
  /usr/local/bin/nmpi-patroni-config "${2:-/var/lib/postgresql/patroni.yml}"
fi
exec "$@"
