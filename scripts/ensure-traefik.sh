#!/usr/bin/env bash
# Makes sure the daemon has homeroom/traefik:v3.6.12, the name the rest of
# Homeroom runs Traefik by. Where a registry answers it pulls the official
# traefik:v3.6.12 and tags it; otherwise (HOMEROOM_TRAEFIK_PULL=false, or no
# registry, as on Homeroom's build machines) it builds Traefik from the Go
# module proxy once per machine (about 5 minutes and 2 GB of modules the first
# time), caches the binary in $HOMEROOM_CACHE (default /var/cache/homeroom),
# and builds a FROM scratch image around it.
#
# Both images take the same command line, Traefik's flags alone: the official
# image's /entrypoint.sh runs `traefik` with arguments that start with `-`, ours
# has /traefik as its entrypoint.
set -euo pipefail
cd "$(dirname "$0")/.."

version=v3.6.12
image=homeroom/traefik:$version
official=traefik:$version
cache=${HOMEROOM_CACHE:-/var/cache/homeroom}
bin="$cache/traefik-$version/traefik"
case ${HOMEROOM_TRAEFIK_PULL:-true} in
  true | 1) pull=true ;;
  false | 0) pull=false ;;
  *) echo "ensure-traefik: HOMEROOM_TRAEFIK_PULL=$HOMEROOM_TRAEFIK_PULL: want true or false" >&2; exit 2 ;;
esac

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi

# pull_official gives a registry a few seconds to answer at all (where none
# can be reached the pull would otherwise hang or fail only after the
# daemon's own timeouts), then the download as long as it takes, up to 10
# minutes.
pull_official() {
  if docker image inspect "$official" >/dev/null 2>&1; then
    return 0
  fi
  local out pid rc=0
  out=$(mktemp)
  timeout 600 docker pull "$official" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 50); do
    if grep -q 'Pulling from' "$out" || ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ! grep -q 'Pulling from' "$out"; then kill "$pid" 2>/dev/null || true; fi
  wait "$pid" || rc=$?
  if [ "$rc" != 0 ]; then
    local why
    why=$(tail -n 1 "$out")
    echo "ensure-traefik: no $official from a registry (${why:-no answer within 5 s}): using Traefik built from source" >&2
  fi
  rm -f "$out"
  return "$rc"
}

if [ "$pull" = true ] && pull_official; then
  docker tag "$official" "$image"
  # The same flags as scripts/run.sh and internal/testenv give it must reach
  # Traefik through the official image's entrypoint.
  docker run --rm "$image" --providers.docker=true --help >/dev/null
  echo "pulled $official as $image" >&2
  exit 0
fi

if [ ! -x "$bin" ]; then
  echo "ensure-traefik: building Traefik $version (about 5 minutes, once per machine)" >&2
  mkdir -p "$(dirname "$bin")"
  (cd tools/traefik && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" github.com/traefik/traefik/v3/cmd/traefik)
  mv "$bin.tmp" "$bin"
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" images/traefik/Dockerfile "$ctx/"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
echo "built $image" >&2
