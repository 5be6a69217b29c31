#!/usr/bin/env bash
# Make a Docker engine available to this project, idempotently.
#
#   1. an engine that already answers `docker info` is used as it is;
#   2. otherwise, on Debian/Ubuntu as root: install Debian's docker.io if missing and
#      start dockerd (through systemd when systemd is PID 1, in the background otherwise);
#   3. otherwise: fail with a message that says what to install.
#
# Environment:
#   NMPI_DOCKER_LOG   dockerd log file when started in the background (default /var/log/nmpi-dockerd.log)
#   NMPI_DOCKER_WAIT  seconds to wait for the engine to answer (default 60)
#   NMPI_OS_RELEASE   os-release file to read (default /etc/os-release; tests point it elsewhere)
set -euo pipefail

log() { printf 'docker-up: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

wait_s=${NMPI_DOCKER_WAIT:-60}
dockerd_log=${NMPI_DOCKER_LOG:-/var/log/nmpi-dockerd.log}
os_release=${NMPI_OS_RELEASE:-/etc/os-release}

# BuildKit works with Debian's 20.10 client at /usr/bin/docker; a newer client elsewhere on
# PATH may lack the buildx plugin, so prefer Debian's when it is there.
docker_cli() {
  if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi
}

engine_answers() {
  command -v docker >/dev/null 2>&1 || [ -x /usr/bin/docker ] || return 1
  docker_cli info >/dev/null 2>&1
}

wait_for_engine() {
  local i
  for ((i = 0; i < wait_s * 2; i++)); do
    engine_answers && return 0
    sleep 0.5
  done
  return 1
}

if engine_answers; then
  log "using the running engine ($(docker_cli version --format '{{.Server.Version}}' 2>/dev/null || echo unknown))"
  exit 0
fi

os_id=""; os_like=""
if [ -r "$os_release" ]; then
  # shellcheck source=/dev/null  # os-release is the machine's, not the project's
  os_id=$(. "$os_release"; echo "${ID:-}")
  # shellcheck source=/dev/null
  os_like=$(. "$os_release"; echo "${ID_LIKE:-}")
fi
case " $os_id $os_like " in
  *" debian "* | *" ubuntu "*) ;;
  *) die "no Docker engine answers and this is not Debian/Ubuntu (ID=${os_id:-unknown}): install Docker Engine (https://docs.docker.com/engine/install/), start it, and run this again" ;;
esac
[ "$(id -u)" -eq 0 ] || die "no Docker engine answers: run this as root to install and start one, or install Debian's docker.io yourself (sudo apt-get install docker.io) and add your user to the docker group"

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
fi

if [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then
  log "starting docker through systemd"
  systemctl enable --now docker.service >/dev/null
elif pgrep -x dockerd >/dev/null 2>&1; then
  log "dockerd is already running; waiting for it to answer"
else
  log "no systemd: starting dockerd in the background (log: $dockerd_log)"
  mkdir -p "$(dirname "$dockerd_log")"
  nohup setsid dockerd >>"$dockerd_log" 2>&1 </dev/null &
fi

wait_for_engine || die "dockerd did not answer within ${wait_s}s; see $dockerd_log"
log "engine ready ($(docker_cli version --format '{{.Server.Version}}'))"
