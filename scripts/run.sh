#!/usr/bin/env bash
# Runs the whole system in the foreground: the apiserver (with the embedded
# store and artifact store) and the controller. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

export HOMEROOM_DATA_DIR=${HOMEROOM_DATA_DIR:-./data}
export HOMEROOM_LOG_FORMAT=${HOMEROOM_LOG_FORMAT:-console}
mkdir -p "$HOMEROOM_DATA_DIR"

pids=()
stop() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait
}
trap stop INT TERM EXIT

bin/apiserver &
pids+=($!)
# The controller waits for the store the apiserver embeds; starting it second
# only shortens that wait.
sleep 1
bin/controller &
pids+=($!)
wait -n
