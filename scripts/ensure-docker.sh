#!/usr/bin/env bash
# Makes sure a Docker daemon answers. Where none does and we are root, it
# installs Debian's docker.io if needed and starts dockerd in the background.
#
# A machine whose processes were ended without a clean shutdown keeps
# dockerd's pid files. dockerd then trusts a containerd pid that now belongs
# to another process (or to a containerd on its way out), waits for a socket
# that never comes and exits after a minute ("timeout waiting for containerd
# to start"). So with no dockerd running, stale pid files and a containerd
# left without its dockerd are cleared first, and a dockerd that exits while
# starting is started once more.
set -euo pipefail

log=/var/log/homeroom-dockerd.log

answers() { timeout 10 docker info >/dev/null 2>&1; }

clear_stale() {
  local pidfile=/var/run/docker/containerd/containerd.pid pid
  if [ -f "$pidfile" ]; then
    pid=$(tr -dc 0-9 <"$pidfile" || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = containerd ]; then
      echo "ensure-docker: stopping containerd $pid, left without its dockerd" >&2
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  fi
  rm -f /var/run/docker.pid
}

if answers; then
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

for attempt in 1 2; do
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    clear_stale
    echo "ensure-docker: starting dockerd (log: $log)" >&2
    nohup dockerd >>"$log" 2>&1 &
  fi
  for _ in $(seq 1 90); do
    if answers; then
      exit 0
    fi
    pgrep -x dockerd >/dev/null 2>&1 || break
    sleep 1
  done
  echo "ensure-docker: dockerd did not answer (attempt $attempt); its log ends:" >&2
  tail -n 5 "$log" >&2 || true
done
echo "ensure-docker: no Docker daemon; see $log" >&2
exit 1
