#!/usr/bin/env bash
# Runs the whole system in the foreground: the apiserver (with the embedded
# store and artifact store) and the controller. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

export HOMEROOM_DATA_DIR=${HOMEROOM_DATA_DIR:-./data}
export HOMEROOM_LOG_FORMAT=${HOMEROOM_LOG_FORMAT:-console}
mkdir -p "$HOMEROOM_DATA_DIR"

traefik=${HOMEROOM_TRAEFIK_CONTAINER:-homeroom-traefik}
port=${HOMEROOM_TRAEFIK_PORT:-80}
started_traefik=""
pids=()
stop() {
  trap - INT TERM EXIT
  # The controller first: it finishes its steps and releases its lease in
  # the store, which the apiserver embeds and so must outlive it.
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  if [ -n "$started_traefik" ]; then docker rm -f "$traefik" >/dev/null 2>&1 || true; fi
}
trap stop INT TERM EXIT

# Traefik routes each student's host to their sandbox, after asking the
# apiserver's sign-in check. It shares the host's network: sandboxes accept no
# traffic from other containers, and it reaches the check on loopback.
# One started by an older Homeroom (on a bridge, port published) is replaced.
if [ "$(docker inspect -f '{{.State.Running}} {{.HostConfig.NetworkMode}}' "$traefik" 2>/dev/null)" != "true host" ]; then
  docker rm -f "$traefik" >/dev/null 2>&1 || true
  docker run -d --name "$traefik" --network host \
    -v /var/run/docker.sock:/var/run/docker.sock:ro homeroom/traefik:v3.6.12 \
    --providers.docker=true --providers.docker.exposedbydefault=false \
    --entrypoints.web.address="127.0.0.1:$port" >/dev/null
  started_traefik=1
  echo "Traefik: http://<student>.<class>.${HOMEROOM_DOMAIN:-lab.localhost}:$port (container $traefik)"
fi

# Their own sessions: Ctrl-C reaches only this script, which stops them in order.
setsid bin/apiserver &
pids+=($!)
# The controller waits for the store the apiserver embeds; starting it second
# only shortens that wait.
sleep 1
# The controller sees each student's host routed through Traefik before a
# notebook counts as ready.
HOMEROOM_TRAEFIK_URL=${HOMEROOM_TRAEFIK_URL:-http://127.0.0.1:$port} setsid bin/controller &
pids+=($!)
wait -n
