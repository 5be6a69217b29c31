#!/usr/bin/env bash
# Set up everything the project's commands need on this machine, idempotently:
#   - uv (pinned), then the locked Python environment in .venv (uv sync --frozen);
#   - server programs the tests start (Debian's postgresql, bind9, etcd-server), if missing;
#   - a Docker engine (scripts/docker-up.sh), unless --no-docker.
# Safe to run again: each step checks before it acts, so a second run takes seconds.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

UV_VERSION=0.13.9          # the uv that wrote uv.lock; bump both together
with_docker=true
for arg in "$@"; do
  case "$arg" in
    --no-docker) with_docker=false ;;
    -h | --help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; echo "usage: $0 [--no-docker]"; exit 0 ;;
    *) echo "setup: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

log() { printf 'setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Outbound TLS may go through an intercepting CA that only the system bundle trusts.
if [ -z "${SSL_CERT_FILE:-}" ] && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
fi

python=$(command -v python3.11 || true)
[ -n "$python" ] || die "Python 3.11 is required (python3.11 not found on PATH); install it (Debian bookworm: apt-get install python3.11 python3.11-venv)"

# uv: the one on PATH if it is the pinned version, else a private copy under .cache/.
uv=$(command -v uv || true)
if [ -z "$uv" ] || [ "$("$uv" --version | awk '{print $2}')" != "$UV_VERSION" ]; then
  uv=$top/.cache/tools/bin/uv
  if [ ! -x "$uv" ] || [ "$("$uv" --version | awk '{print $2}')" != "$UV_VERSION" ]; then
    log "installing uv $UV_VERSION into .cache/tools"
    "$python" -m venv "$top/.cache/tools"
    "$top/.cache/tools/bin/pip" install -q "uv==$UV_VERSION"
  fi
fi

log "syncing .venv with uv.lock"
UV_PYTHON_DOWNLOADS=never "$uv" sync --frozen --python "$python" --quiet

# Server programs the tests start themselves, from Debian's packages: PostgreSQL for the
# platform tests, BIND9 and etcd for nmpi-failover's adapter tests, and a real browser
# (Chromium, headless) for the dashboards.
missing=()
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
[ -x /usr/sbin/named ] || missing+=(bind9)
[ -x /usr/bin/etcd ] || missing+=(etcd-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The emulators' job sandbox (platform/emulators, its tests).
[ -x /usr/bin/bwrap ] || missing+=(bubblewrap)
# The Job Manager's build (scripts/build-job-manager: node >= 20 with npm; Debian's nodejs
# is too old for its toolchain, so a machine without node gets a clear refusal there instead).
command -v node >/dev/null || missing+=(nodejs npm)
command -v node >/dev/null && ! command -v npm >/dev/null && missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
      || die "cannot install ${missing[*]}"
  else
    die "missing server programs for the tests: install Debian's ${missing[*]} (as root: apt-get install ${missing[*]})"
  fi
fi

if $with_docker; then
  "$top/scripts/docker-up.sh"
fi
log "ready (activate with: source .venv/bin/activate)"
