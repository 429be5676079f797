#!/usr/bin/env bash
# Makes sure a Chromium is there for the browser tests (test/browser). Where
# none is and we are root, it installs Debian's chromium. Chromium never
# downloads a browser of its own: the machines have no internet.
set -euo pipefail

if [ -n "${HOMEROOM_CHROMIUM:-}" ] && [ -x "$HOMEROOM_CHROMIUM" ]; then
  exit 0
fi
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-chromium: no chromium found and we are not root; install Debian's chromium or set HOMEROOM_CHROMIUM" >&2
  exit 1
fi
echo "ensure-chromium: installing Debian's chromium" >&2
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
command -v chromium >/dev/null
