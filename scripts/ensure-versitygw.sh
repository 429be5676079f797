#!/usr/bin/env bash
# Builds versitygw, the S3 server the apiserver runs as its embedded artifact
# store and the integration tests run against, once per machine: the binary is
# cached in $HOMEROOM_CACHE (default /var/cache/homeroom) and rebuilt only when
# missing. Prints the binary's path (for HOMEROOM_VERSITYGW). Keep the version
# in step with internal/versitygw.Version.
set -euo pipefail

version=v1.8.0
cache=${HOMEROOM_CACHE:-/var/cache/homeroom}
bin="$cache/versitygw-$version/versitygw"
if [ ! -x "$bin" ]; then
  echo "ensure-versitygw: building versitygw $version (about 2 minutes, once per machine)" >&2
  mkdir -p "$(dirname "$bin")"
  GOBIN="$(dirname "$bin")" CGO_ENABLED=0 go install "github.com/versity/versitygw/cmd/versitygw@$version" >&2
fi
echo "$bin"
