#!/usr/bin/env bash
# Build the project's images: the base image first (images/base/bootstrap.sh), then every
# images/<dir>/Dockerfile in the order of NMPI_IMAGES (images/images.env), cached by Docker.
#
#   images/build.sh            build all
#   images/build.sh vm ...     build the named images only (the base image is always ensured)
#   images/build.sh --list     print "<dir> <image:tag>" for every image and exit
#
# The build context is images/<dir>, or for an image with NMPI_CONTEXT_<DIR> (images.env) a
# staged copy of that folder: images/<dir>/.dockerignore becomes its .dockerignore, and when it
# holds a uv workspace package (pyproject.toml), locked-requirements.txt is added: the package's
# exact, hashed dependencies from uv.lock (`uv export --frozen`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
while IFS='=' read -r key value; do  # images.env: KEY=VALUE lines, values may hold spaces
  if [[ $key =~ ^NMPI_[A-Z0-9_]+$ ]]; then printf -v "$key" '%s' "$value"; fi
done < "$here/images.env"

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
docker_cli() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi; }

image_ref() {  # images/<dir> -> name:tag from images.env
  local var
  var="NMPI_IMAGE_$(echo "$1" | tr '[:lower:]-' '[:upper:]_')"
  [ -n "${!var:-}" ] || die "images/$1 has no name: add $var=<name> to images/images.env"
  printf '%s:%s\n' "${!var}" "$NMPI_IMAGE_TAG"
}

build_context() {  # images/<dir> -> the folder to send as build context (staged under $2)
  local var
  var="NMPI_CONTEXT_$(echo "$1" | tr '[:lower:]-' '[:upper:]_')"
  if [ -z "${!var:-}" ]; then printf '%s\n' "$here/$1"; return; fi
  local source="$top/${!var}" stage="$2/$1" uv package
  [ -d "$source" ] || die "$var=${!var} is not a folder of the repository"
  mkdir -p "$stage"
  tar -C "$source" --exclude=.venv --exclude=__pycache__ --exclude='.*_cache' -cf - . | tar -C "$stage" -xf -
  if [ -f "$here/$1/.dockerignore" ]; then cp "$here/$1/.dockerignore" "$stage/.dockerignore"; fi
  if [ -f "$source/pyproject.toml" ]; then
    uv=$top/.cache/tools/bin/uv   # the pinned uv of scripts/setup.sh, else the one on PATH
    [ -x "$uv" ] || uv=$(command -v uv || true)
    [ -n "$uv" ] || die "uv not found (needed to export the locked requirements): run scripts/setup.sh"
    package=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$source/pyproject.toml" | head -n 1)
    (cd "$top" && "$uv" export --quiet --frozen --package "$package" --no-dev --no-emit-workspace \
      --format requirements-txt >"$stage/locked-requirements.txt") \
      || die "cannot export the locked requirements of $package from uv.lock"
  fi
  printf '%s\n' "$stage"
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
stages=$(mktemp -d "${TMPDIR:-/tmp}/nmpi-images.XXXXXX")
trap 'rm -rf "$stages"' EXIT
for dir in $NMPI_IMAGES; do
  case " $wanted " in *" $dir "*) ;; *) continue;; esac
  ref=$(image_ref "$dir")
  log "building $ref from images/$dir"
  start=$(date +%s)
  quiet=--quiet; [ -t 2 ] && quiet=   # progress on a terminal, errors only otherwise
  context=$(build_context "$dir" "$stages")
  docker_cli build $quiet --build-arg "BASE_IMAGE=$NMPI_BASE_IMAGE" \
    --label "org.opencontainers.image.source=nmpi-infra/images/$dir" \
    -f "$here/$dir/Dockerfile" -t "$ref" "$context" >/dev/null
  log "built $ref in $(( $(date +%s) - start ))s"
done
