#!/bin/sh
# Write the TSIG key and the zone's stanza for named from the environment and the mounted secret
# file, create the zone file on first start (kept afterwards: it holds the updates), then exec.
set -eu
zone=${NMPI_ZONE:-lab.example.}
case $zone in *.) ;; *) zone="$zone.";; esac
key_name=${NMPI_TSIG_KEY_NAME:-nmpi-failover.}
algorithm=${NMPI_TSIG_ALGORITHM:-hmac-sha256}
secret_file=${NMPI_TSIG_SECRET_FILE:-/run/secrets/tsig.key}
[ -r "$secret_file" ] || { echo "bind9: TSIG secret file $secret_file is not readable" >&2; exit 2; }
secret=$(tr -d ' \t\r\n' < "$secret_file")
[ -n "$secret" ] || { echo "bind9: TSIG secret file $secret_file is empty" >&2; exit 2; }
ns_address=${NMPI_NS_ADDRESS:-$(hostname -i | awk '{print $1}')}
zone_file="/var/lib/bind/${zone%.}.zone"

umask 027
cat > /run/named/nmpi.conf <<CONF
key "$key_name" {
    algorithm $algorithm;
    secret "$secret";
};
zone "$zone" {
    type primary;
    file "$zone_file";
    update-policy { grant $key_name zonesub ANY; };
};
CONF
chgrp bind /run/named/nmpi.conf

if [ ! -f "$zone_file" ]; then
  {
    printf '$ORIGIN %s\n$TTL 30\n' "$zone"
    printf '@ IN SOA ns.%s hostmaster.%s 1 60 30 3600 30\n' "$zone" "$zone"
    printf '@ IN NS ns.%s\nns IN A %s\n' "$zone" "$ns_address"
    if [ -n "${NMPI_ZONE_RECORDS:-}" ]; then printf '%s\n' "$NMPI_ZONE_RECORDS" | tr ';' '\n'; fi
  } > "$zone_file"
  chown bind:bind "$zone_file"
fi
named-checkconf -z /etc/bind/named.conf >/dev/null
exec "$@"
