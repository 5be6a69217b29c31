#!/usr/bin/env bash
# Make the base image (NMPI_BASE_IMAGE, debian:bookworm-slim) available to the local engine.
#
# In order: keep it if the engine already has it; pull it if a registry answers; otherwise
# build it from the machine's own Debian mirror with debootstrap and `docker import` it under
# the same name, so that standard Dockerfiles build unchanged. The local image trusts the
# host's CA bundle (outbound TLS may go through an intercepting CA) and carries apt sources
# pointing at the same mirror.
#
# Environment:
#   NMPI_BASE_PULL      auto (try a pull first, the default) or never
#   NMPI_DEBIAN_MIRROR  Debian mirror URL (default: the host's own apt source, else deb.debian.org)
#   NMPI_DEBIAN_SECURITY_MIRROR  security mirror URL (default: the host's, else deb.debian.org/debian-security)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
while IFS='=' read -r key value; do  # images.env: KEY=VALUE lines, values may hold spaces
  if [[ $key =~ ^NMPI_[A-Z0-9_]+$ ]]; then printf -v "$key" '%s' "$value"; fi
done < "$here/../images.env"

log() { printf 'base-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
docker_cli() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi; }

image=$NMPI_BASE_IMAGE
suite=${image#*:}; suite=${suite%%-*}    # debian:bookworm-slim -> bookworm

if docker_cli image inspect "$image" >/dev/null 2>&1; then
  log "$image is already present"
  exit 0
fi
if [ "${NMPI_BASE_PULL:-auto}" != never ]; then
  if timeout 60 "$(command -v /usr/bin/docker || command -v docker)" pull -q "$image" >/dev/null 2>&1; then
    log "pulled $image"
    exit 0
  fi
  log "cannot pull $image: building it locally with debootstrap"
fi

[ "$(id -u)" -eq 0 ] || die "building $image needs root (debootstrap); run as root or make $image available to the engine"

# The host's own mirror: first URIs of a deb822 source for $suite, else a sources.list line.
host_mirror() {  # $1 = suite to look for (bookworm or bookworm-security)
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk -v s="$1" '
      /^[[:space:]]*$/ { if (uri != "" && hit) { print uri; exit } uri = ""; hit = 0; next }
      /^URIs:/   { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
      END        { if (uri != "" && hit) print uri }' "$f" | head -n1
  done | head -n1
  if [ -r /etc/apt/sources.list ]; then
    awk -v s="$1" '$1 == "deb" && $3 == s { print $2; exit }' /etc/apt/sources.list
  fi
}
mirror=${NMPI_DEBIAN_MIRROR:-$(host_mirror "$suite" | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${NMPI_DEBIAN_SECURITY_MIRROR:-$(host_mirror "$suite-security" | head -n1)}
security=${security:-http://deb.debian.org/debian-security}

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
    || die "cannot install debootstrap"
fi

rootfs=$(mktemp -d /var/tmp/nmpi-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
log "debootstrap $suite from $mirror (about a minute)"
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || { tail -n 20 "$rootfs.log" >&2; die "debootstrap failed (full log: $rootfs.log)"; }
rm -f "$rootfs.log"

# Trust what the host trusts: the bundle now, and the extra CAs for when a Dockerfile
# installs ca-certificates and regenerates the bundle.
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/local/share/ca-certificates"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
fi

# apt sources laid out as in the official image (deb822), on the same mirror.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

# Slim like the official image: no docs or man pages, no caches.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
DPKG
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*

tar -C "$rootfs" -c . | docker_cli import \
  --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$image" >/dev/null
log "built $image locally ($(docker_cli image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
