#!/usr/bin/env bash
# Makes sure a Docker daemon answers. Where none does and we are root, it
# installs Debian's docker.io if needed and starts dockerd in the background.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-docker: no Docker daemon answers and we are not root; start dockerd first" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing Debian's docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "ensure-docker: starting dockerd (log: /var/log/homeroom-dockerd.log)" >&2
  nohup dockerd >/var/log/homeroom-dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "ensure-docker: dockerd did not answer within 60s; see /var/log/homeroom-dockerd.log" >&2
exit 1
