#!/usr/bin/env bash
# Builds promtool, which checks manifests/prometheus (the scrape config, the
# alert rules and their unit tests), from the Go module proxy once per machine:
# the binary is cached in $HOMEROOM_CACHE (default /var/cache/homeroom) and
# rebuilt only when missing. The version is the one tools/promtool/go.mod pins
# (Prometheus 3.x is tagged v0.3xx.y as a Go module). Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."

version=v0.316.0 # github.com/prometheus/prometheus in tools/promtool/go.mod
if ! grep -q "github.com/prometheus/prometheus $version\$" tools/promtool/go.mod; then
  echo "ensure-promtool: tools/promtool/go.mod does not pin github.com/prometheus/prometheus $version" >&2
  exit 1
fi
cache=${HOMEROOM_CACHE:-/var/cache/homeroom}
bin="$cache/promtool-$version/promtool"
if [ ! -x "$bin" ]; then
  echo "ensure-promtool: building promtool $version (a few minutes, once per machine)" >&2
  mkdir -p "$(dirname "$bin")"
  (cd tools/promtool && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-X github.com/prometheus/common/version.Version=$version" \
    -o "$bin.tmp" github.com/prometheus/prometheus/cmd/promtool) >&2
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
