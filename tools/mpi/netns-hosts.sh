#!/usr/bin/env bash
# Two "machines" on this one machine: two Linux network namespaces joined by a veth pair, the
# project's own test hosts for MPI over TCP (docs/distributed.md, "Two hosts on one machine").
#
#   tools/mpi/netns-hosts.sh up       # create (idempotent: repairs what is missing)
#   tools/mpi/netns-hosts.sh status   # print the topology, probe TCP between the two; exit 1 if not up
#   tools/mpi/netns-hosts.sh down     # delete (idempotent)
#
# Topology (override with the environment variables in brackets):
#
#   namespace llmft-a [LLMFT_NETNS_A]            namespace llmft-b [LLMFT_NETNS_B]
#     lo 127.0.0.1                                  lo 127.0.0.1
#     llmft-va 10.77.0.1/24 [LLMFT_NETNS_ADDR_A] <-veth-> llmft-vb 10.77.0.2/24 [LLMFT_NETNS_ADDR_B]
#
# The namespaces share this machine's kernel, CPUs, memory, files and hostname; only the network
# is separate, so MPI traffic between a process in llmft-a and one in llmft-b can only go over
# the veth pair (TCP), never through shared memory unless MPI is allowed to pick it (see
# tools/mpi/netns-mpirun.sh, which forces TCP). Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and the
# `ip` command from iproute2.
set -euo pipefail

ns_a="${LLMFT_NETNS_A:-llmft-a}"
ns_b="${LLMFT_NETNS_B:-llmft-b}"
addr_a="${LLMFT_NETNS_ADDR_A:-10.77.0.1/24}"
addr_b="${LLMFT_NETNS_ADDR_B:-10.77.0.2/24}"
dev_a="llmft-va"
dev_b="llmft-vb"
me="tools/mpi/netns-hosts.sh"

die() { echo "$me: error: $1" >&2; [ $# -lt 2 ] || echo "  hint: $2" >&2; exit 1; }
say() { echo "$me: $*"; }

preflight() {
  command -v ip >/dev/null || die "the 'ip' command is missing" "apt-get install iproute2"
  [ "$(id -u)" -eq 0 ] || die "network namespaces need root (you are uid $(id -u))" "sudo $me $1"
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
link_in_ns() { ip -n "$1" link show "$2" >/dev/null 2>&1; }

add_namespace() {
  if ns_exists "$1"; then say "namespace $1 exists"; return; fi
  local err
  err=$(ip netns add "$1" 2>&1) || die "ip netns add $1 failed: $err" \
    "this needs CAP_SYS_ADMIN and a writable /run/netns; in an unprivileged container run it on the host, or start the container with --privileged"
  say "namespace $1 created"
}

# One veth pair with one end in each namespace. Created in one command, so it exists whole or not
# at all; a stale end left in the root namespace by an interrupted older run is removed first.
add_veth() {
  if link_in_ns "$ns_a" "$dev_a" && link_in_ns "$ns_b" "$dev_b"; then say "veth $dev_a <-> $dev_b exists"; return; fi
  ip -n "$ns_a" link del "$dev_a" 2>/dev/null || true
  ip -n "$ns_b" link del "$dev_b" 2>/dev/null || true
  ip link del "$dev_a" 2>/dev/null || true
  ip link del "$dev_b" 2>/dev/null || true
  local err
  err=$(ip link add "$dev_a" netns "$ns_a" type veth peer name "$dev_b" netns "$ns_b" 2>&1) \
    || die "creating the veth pair failed: $err" "the kernel needs the veth module (modprobe veth)"
  say "veth $dev_a ($ns_a) <-> $dev_b ($ns_b) created"
}

configure_end() { # namespace device address
  ip -n "$1" addr replace "$3" dev "$2"
  ip -n "$1" link set "$2" up
  ip -n "$1" link set lo up
}

up() {
  preflight up
  add_namespace "$ns_a"
  add_namespace "$ns_b"
  add_veth
  configure_end "$ns_a" "$dev_a" "$addr_a"
  configure_end "$ns_b" "$dev_b" "$addr_b"
  status
}

down() {
  preflight down
  local ns pids
  for ns in "$ns_a" "$ns_b"; do
    if ! ns_exists "$ns"; then say "namespace $ns absent"; continue; fi
    pids=$(ip netns pids "$ns" | tr '\n' ' ')
    [ -z "$pids" ] || say "warning: processes still in $ns (pids $pids); the namespace lives on until they exit"
    ip netns del "$ns"
    say "namespace $ns deleted (with its end of the veth pair)"
  done
  ip link del "$dev_a" 2>/dev/null || true
}

# A TCP connection from llmft-a to llmft-b's address, over the veth (python3: no ping here).
probe_tcp() {
  command -v python3 >/dev/null || { say "python3 missing: TCP probe skipped"; return 0; }
  local host_b=${addr_b%/*} port=47799
  ip netns exec "$ns_b" timeout 10 python3 -c "
import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('$host_b', $port)); s.listen(1); c, _ = s.accept(); c.sendall(c.recv(64))" &
  local server=$! reply=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    reply=$(ip netns exec "$ns_a" python3 -c "
import socket; s = socket.create_connection(('$host_b', $port), timeout=2); s.sendall(b'llmft'); print(s.recv(64).decode())" 2>/dev/null) && break
    sleep 0.3
  done
  wait "$server" 2>/dev/null || true
  [ "$reply" = "llmft" ] || { echo "$me: TCP probe $ns_a -> $host_b:$port failed" >&2; return 1; }
  say "TCP probe $ns_a -> $host_b:$port ok"
}

status() {
  preflight status
  local ok=0 ns dev
  for ns in "$ns_a" "$ns_b"; do ns_exists "$ns" || { echo "$me: namespace $ns absent (run: $me up)" >&2; ok=1; }; done
  [ $ok -eq 0 ] || return 1
  for pair in "$ns_a:$dev_a" "$ns_b:$dev_b"; do
    ns=${pair%%:*}; dev=${pair#*:}
    link_in_ns "$ns" "$dev" || { echo "$me: $dev missing in $ns (run: $me up)" >&2; return 1; }
    echo "== $ns"
    ip -n "$ns" -brief addr show
    ip -n "$ns" -s link show "$dev" | sed -n '3,6p'
  done
  probe_tcp
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $me up|down|status   (see the header of this file)" >&2; exit 2 ;;
esac
