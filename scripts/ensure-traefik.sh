#!/usr/bin/env bash
# Builds Traefik from the Go module proxy once per machine (about 5 minutes and
# 2 GB of modules the first time), caches the binary in $HOMEROOM_CACHE
# (default /var/cache/homeroom), and builds the FROM scratch image
# homeroom/traefik:v3.6.12 when the daemon lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."

version=v3.6.12
image=homeroom/traefik:$version
cache=${HOMEROOM_CACHE:-/var/cache/homeroom}
bin="$cache/traefik-$version/traefik"

if [ ! -x "$bin" ]; then
  echo "ensure-traefik: building Traefik $version (about 5 minutes, once per machine)" >&2
  mkdir -p "$(dirname "$bin")"
  (cd tools/traefik && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" github.com/traefik/traefik/v3/cmd/traefik)
  mv "$bin.tmp" "$bin"
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$bin" images/traefik/Dockerfile "$ctx/"
  DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
  echo "built $image" >&2
fi
