#!/usr/bin/env bash
# Makes (up) or removes (down) a Docker Swarm of N nodes on this machine, for
# the Swarm tests and the bench: one extra dockerd per node, each in its own
# network namespace with its own data root, exec root and socket, joined by
# veth pairs on one host bridge. Node 1 is the manager.
#
#   scripts/swarm-nodes.sh up [N]     # prints the manager's DOCKER_HOST
#   scripts/swarm-nodes.sh down
#   scripts/swarm-nodes.sh stop K     # stops node K's daemon (a lost node)
#   scripts/swarm-nodes.sh start K    # starts it again
#
# Each node's daemon is started with nsenter (ip netns exec remounts /sys and
# dockerd then finds no devices cgroup). The nodes have no default route:
# a worker looks up the registry before it uses a local image, and with no
# route that lookup fails at once instead of after a 30 s timeout. The host
# is reachable from every node at the bridge's address ($HOST_ADDR), where
# the tests serve the object store to the collection jobs.
#
# Images named in HOMEROOM_SWARM_IMAGES (space-separated) are copied from the
# host's daemon into every node's. Everything lives under $ROOT and in
# namespaces named hr-node-K; `down` removes all of it, also what a killed
# run left.
set -euo pipefail

ROOT=${HOMEROOM_SWARM_ROOT:-/var/lib/homeroom-swarm}
RUN=/run/homeroom-swarm
BRIDGE=hrswarm0
PREFIX=10.231.7
HOST_ADDR=$PREFIX.1
IMAGES=${HOMEROOM_SWARM_IMAGES:-}
# Where each node's Docker socket is, seen from that node (HOMEROOM_SWARM_NODE_SOCKET).
NODE_RUN=/run/homeroom-node

node_addr() { echo "$PREFIX.$((10 + $1))"; }
node_sock() { echo "unix://$RUN/node$1/docker.sock"; }
nd() { local k=$1; shift; docker -H "$(node_sock "$k")" "$@"; }

accept_bridge() {
  # Bridged packets cross the host's FORWARD chain, whose policy Docker sets
  # to DROP; DOCKER-USER is the chain Docker leaves to us.
  iptables -C DOCKER-USER -i $BRIDGE -o $BRIDGE -j ACCEPT 2>/dev/null ||
    iptables -I DOCKER-USER -i $BRIDGE -o $BRIDGE -j ACCEPT
}

start_daemon() {
  local k=$1 ns=hr-node-$1
  mkdir -p "$ROOT/node$k" "$RUN/node$k" "$RUN/node$k-exec" "$NODE_RUN"
  if nd "$k" info >/dev/null 2>&1; then return; fi
  # Its own mount namespace, where $NODE_RUN is this node's own directory:
  # on every node the socket is at the same path, as /var/run/docker.sock
  # is on real nodes, and a job that mounts it reaches its own node. Its
  # own host name, so that status can name the node.
  unshare --mount --uts --propagation private sh -c '
    mount --bind "$1" "$2" && hostname "$3" && shift 3 && exec "$@"' _ \
    "$RUN/node$k" "$NODE_RUN" "hr-node-$k" \
    nsenter --net=/var/run/netns/$ns dockerd \
    --data-root "$ROOT/node$k" --exec-root "$RUN/node$k-exec" \
    -H "unix://$NODE_RUN/docker.sock" --pidfile "$RUN/node$k.pid" \
    >"$ROOT/node$k.log" 2>&1 &
  for _ in $(seq 1 120); do
    nd "$k" info >/dev/null 2>&1 && return
    sleep 0.5
  done
  echo "swarm-nodes: node $k's dockerd did not answer; see $ROOT/node$k.log" >&2
  tail -20 "$ROOT/node$k.log" >&2
  exit 1
}

stop_daemon() {
  local k=$1 pid
  pid=$(cat "$RUN/node$k.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || return 0
      sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

up() {
  local n=${1:-3} k ns token
  modprobe vxlan 2>/dev/null || true
  mkdir -p "$ROOT" "$RUN"
  if ! ip link show $BRIDGE >/dev/null 2>&1; then
    ip link add $BRIDGE type bridge
    ip addr add $HOST_ADDR/24 dev $BRIDGE
    ip link set $BRIDGE up
  fi
  accept_bridge
  for k in $(seq 1 "$n"); do
    ns=hr-node-$k
    if ! ip netns list | grep -qw "$ns"; then
      ip netns add "$ns"
      ip link add "hrv$k" type veth peer name eth0 netns "$ns"
      ip link set "hrv$k" master $BRIDGE up
      ip -n "$ns" addr add "$(node_addr "$k")/24" dev eth0
      ip -n "$ns" link set eth0 up
      ip -n "$ns" link set lo up
    fi
    start_daemon "$k"
  done
  if [ "$(nd 1 info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    nd 1 swarm init --advertise-addr "$(node_addr 1)" --listen-addr "$(node_addr 1):2377" \
      --task-history-limit 1 >/dev/null
  fi
  token=$(nd 1 swarm join-token -q worker)
  for k in $(seq 2 "$n"); do
    if [ "$(nd "$k" info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
      nd "$k" swarm join --token "$token" --advertise-addr "$(node_addr "$k")" \
        --listen-addr "$(node_addr "$k"):2377" "$(node_addr 1):2377" >/dev/null
    fi
  done
  for img in $IMAGES; do
    for k in $(seq 1 "$n"); do
      if ! nd "$k" image inspect "$img" >/dev/null 2>&1; then
        docker save "$img" | nd "$k" load -q >/dev/null
      fi
    done
  done
  # Every node ready before anything is scheduled.
  for _ in $(seq 1 120); do
    if [ "$(nd 1 node ls --format '{{.Status}}' | grep -c Ready)" -ge "$n" ]; then
      node_sock 1
      return
    fi
    sleep 0.5
  done
  echo "swarm-nodes: not every node became ready" >&2
  nd 1 node ls >&2
  exit 1
}

down() {
  local ns k
  for ns in $(ip netns list | awk '/^hr-node-/ {print $1}'); do
    k=${ns#hr-node-}
    nd "$k" swarm leave --force >/dev/null 2>&1 || true
    stop_daemon "$k"
    ip netns delete "$ns" 2>/dev/null || true
  done
  ip link delete $BRIDGE 2>/dev/null || true
  iptables -D DOCKER-USER -i $BRIDGE -o $BRIDGE -j ACCEPT 2>/dev/null || true
  # The nodes' data roots hold overlay mounts while a daemon runs; they are
  # gone with the daemons, and what is left is plain files.
  grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  grep -o " $RUN/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$ROOT" "$RUN"
  rmdir "$NODE_RUN" 2>/dev/null || true
}

case "${1:-}" in
  up) up "${2:-3}" ;;
  down) down ;;
  stop) stop_daemon "$2" ;;
  start) start_daemon "$2" ;;
  addr) node_addr "$2" ;;
  *) echo "usage: $0 up [N] | down | stop K | start K | addr K" >&2; exit 2 ;;
esac
