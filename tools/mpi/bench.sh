#!/usr/bin/env bash
# Measures MPI_Allreduce with 2 ranks on this machine, twice: through shared memory (plain
# `mpirun -np 2`) and through TCP across the two namespace hosts (tools/mpi/netns-mpirun.sh),
# and proves the second went over the veth pair by the interface's byte counters.
#
#   tools/mpi/bench.sh [shm|veth|both] [allreduce_bench arguments...]
#   tools/mpi/bench.sh both --seconds 2                  # what docs/distributed.md reports
#   tools/mpi/bench.sh veth --seconds 0.5 1e6 7090946    # a quick check
#   MPIRUN_ARGS="--mca mpi_yield_when_idle 1" tools/mpi/bench.sh both   # extra mpirun options
#
# Builds tools/mpi/.build/allreduce_bench first (make -C tools/mpi). The veth run needs root and
# brings the namespaces up (tools/mpi/netns-hosts.sh up) if they are not.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mode="${1:-both}"
[ $# -eq 0 ] || shift
make -s -C "$here" .build/allreduce_bench
bench="$here/.build/allreduce_bench"

header() { echo "== $1 ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(mpirun --version | head -1))"; }

veth_bytes() { # rx and tx bytes of llmft-a's end of the veth pair
  ip -n "${LLMFT_NETNS_A:-llmft-a}" -s link show llmft-va | awk '/RX:/{getline; rx=$1} /TX:/{getline; tx=$1} END{print rx, tx}'
}

run_shm() {
  header "shared memory: mpirun -np 2 --bind-to none ${MPIRUN_ARGS:-}${MPIRUN_ARGS:+ }$bench $*"
  mpirun --allow-run-as-root -np 2 --bind-to none ${MPIRUN_ARGS:-} "$bench" "$@"
}

run_veth() {
  "$here/netns-hosts.sh" status >/dev/null 2>&1 || "$here/netns-hosts.sh" up >/dev/null
  header "TCP over veth: tools/mpi/netns-mpirun.sh -np 2 --bind-to none ${MPIRUN_ARGS:-}${MPIRUN_ARGS:+ }$bench $*"
  local before after
  before=$(veth_bytes)
  "$here/netns-mpirun.sh" -np 2 --bind-to none ${MPIRUN_ARGS:-} "$bench" "$@"
  after=$(veth_bytes)
  echo "$before $after" | awk '{printf "# veth llmft-va during the run: received %.1f MB, sent %.1f MB\n", ($3-$1)/1e6, ($4-$2)/1e6}'
}

case "$mode" in
  shm) run_shm "$@" ;;
  veth) run_veth "$@" ;;
  both) run_shm "$@"; run_veth "$@" ;;
  *) echo "usage: tools/mpi/bench.sh [shm|veth|both] [allreduce_bench arguments...]" >&2; exit 2 ;;
esac
