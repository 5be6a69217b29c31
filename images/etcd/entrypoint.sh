#!/bin/sh
# Defaults for etcd's ETCD_* variables, derived from ETCD_NAME and ETCD_INITIAL_CLUSTER; any
# ETCD_* variable set by the caller wins. Then exec the command (etcd by default).
set -eu
if [ "${1:-}" = etcd ]; then
  : "${ETCD_NAME:?set ETCD_NAME to this member's name}"
  : "${ETCD_INITIAL_CLUSTER:?set ETCD_INITIAL_CLUSTER to name=http://host:2380,... for every member}"
  peer=$(printf '%s\n' "$ETCD_INITIAL_CLUSTER" | tr ',' '\n' | sed -n "s|^$ETCD_NAME=||p" | head -n 1)
  [ -n "$peer" ] || { echo "etcd: ETCD_INITIAL_CLUSTER has no entry for ETCD_NAME=$ETCD_NAME" >&2; exit 2; }
  host=$(printf '%s\n' "$peer" | sed 's|^[a-z]*://||; s|:[0-9]*$||')
  export ETCD_INITIAL_ADVERTISE_PEER_URLS="${ETCD_INITIAL_ADVERTISE_PEER_URLS:-$peer}"
  export ETCD_ADVERTISE_CLIENT_URLS="${ETCD_ADVERTISE_CLIENT_URLS:-http://$host:2379}"
  export ETCD_LISTEN_PEER_URLS="${ETCD_LISTEN_PEER_URLS:-http://0.0.0.0:2380}"
  export ETCD_LISTEN_CLIENT_URLS="${ETCD_LISTEN_CLIENT_URLS:-http://0.0.0.0:2379}"
  export ETCD_DATA_DIR="${ETCD_DATA_DIR:-/var/lib/etcd/$ETCD_NAME}"
  export ETCD_INITIAL_CLUSTER_STATE="${ETCD_INITIAL_CLUSTER_STATE:-new}"
  export ETCD_INITIAL_CLUSTER_TOKEN="${ETCD_INITIAL_CLUSTER_TOKEN:-nmpi}"
  # A LAN-like lab: quicker failure detection than etcd's WAN-friendly defaults is not needed;
  # keep etcd's defaults unless the caller sets ETCD_HEARTBEAT_INTERVAL/ETCD_ELECTION_TIMEOUT.
fi
exec "$@"
