#!/usr/bin/env bash
# Resolve requirements.in and build-requirements.in into requirements.txt and
# build-requirements.txt: exact versions and the hashes of every file, for the image's Python
# (Debian bookworm: CPython 3.11, glibc 2.36). Patroni is not a uv workspace package, so
# images/build.sh cannot export it from uv.lock; these two files are its lock instead, checked
# by pip --require-hashes at build time. Run after changing a pin, then images/build.sh patroni.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
uv=$top/.cache/tools/bin/uv   # the pinned uv of scripts/setup.sh, else the one on PATH
[ -x "$uv" ] || uv=$(command -v uv || true)
[ -n "$uv" ] || { echo "lock.sh: uv not found: run scripts/setup.sh" >&2; exit 1; }
cd "$here"
for name in requirements build-requirements; do
  "$uv" pip compile --quiet --generate-hashes --no-config \
    --python-version 3.11 --python-platform x86_64-manylinux_2_36 \
    --custom-compile-command "images/patroni/lock.sh" \
    "$name.in" -o "$name.txt"
done
