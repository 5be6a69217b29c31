#!/usr/bin/env bash
# Build the project's images: the base image first (images/base/bootstrap.sh), then every
# images/<dir>/Dockerfile in the order of NMPI_IMAGES (images/images.env), cached by Docker.
#
#   images/build.sh            build all
#   images/build.sh vm ...     build the named images only (the base image is always ensured)
#   images/build.sh --list     print "<dir> <image:tag>" for every image and exit
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=images.env
. "$here/images.env"

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
docker_cli() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi; }

image_ref() {  # images/<dir> -> name:tag from images.env
  local var="NMPI_IMAGE_$(echo "$1" | tr '[:lower:]-' '[:upper:]_')"
  [ -n "${!var:-}" ] || die "images/$1 has no name: add $var=<name> to images/images.env"
  printf '%s:%s\n' "${!var}" "$NMPI_IMAGE_TAG"
}

# Every Dockerfile folder must be listed, so that no image is silently left out.
for dockerfile in "$here"/*/Dockerfile; do
  dir=$(basename "$(dirname "$dockerfile")")
  case " $NMPI_IMAGES " in *" $dir "*) ;; *) die "images/$dir/Dockerfile is not listed in NMPI_IMAGES (images/images.env)";; esac
done

if [ "${1:-}" = --list ]; then
  for dir in $NMPI_IMAGES; do printf '%s %s\n' "$dir" "$(image_ref "$dir")"; done
  exit 0
fi

wanted=${*:-$NMPI_IMAGES}
for dir in $wanted; do
  case " $NMPI_IMAGES " in *" $dir "*) ;; *) die "unknown image '$dir' (known: $NMPI_IMAGES)";; esac
done

"$here/base/bootstrap.sh"
export DOCKER_BUILDKIT=1
for dir in $NMPI_IMAGES; do
  case " $wanted " in *" $dir "*) ;; *) continue;; esac
  ref=$(image_ref "$dir")
  log "building $ref from images/$dir"
  start=$(date +%s)
  quiet=--quiet; [ -t 2 ] && quiet=   # progress on a terminal, errors only otherwise
  docker_cli build $quiet --build-arg "BASE_IMAGE=$NMPI_BASE_IMAGE" \
    --label "org.opencontainers.image.source=nmpi-infra/images/$dir" \
    -t "$ref" "$here/$dir" >/dev/null
  log "built $ref in $(( $(date +%s) - start ))s"
done
