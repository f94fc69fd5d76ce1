#!/usr/bin/env bash
# mpirun across the two namespace hosts of tools/mpi/netns-hosts.sh, over TCP on the veth pair:
#
#   tools/mpi/netns-hosts.sh up
#   tools/mpi/netns-mpirun.sh -np 2 tools/mpi/.build/allreduce_bench
#   tools/mpi/netns-mpirun.sh -np 2 .build/release/train ...      # any MPI program, any mpirun option
#
# It runs, with the arguments appended:
#
#   ip netns exec llmft-a mpirun --allow-run-as-root --host llmft-a,llmft-b \
#     --mca plm_rsh_agent $PWD/tools/mpi/netns-agent.sh \
#     --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
#     --bind-to none ...
#
# - mpirun itself runs in llmft-a: the daemons (orted) it starts in llmft-a and llmft-b through the
#   agent must connect back to it, and from llmft-b only 10.77.0.1 is reachable.
# - Each --host name gets one slot (rank 0 in llmft-a, rank 1 in llmft-b); write
#   LLMFT_NETNS_HOSTS=llmft-a:2,llmft-b:2 for two ranks in each.
# - `btl tcp,self` forbids shared memory, `*_if_include` keeps MPI and its bootstrap on the veth
#   subnet (IPv4; without it Open MPI also opens the veth's IPv6 link-local address). Open MPI
#   would pick TCP on its own here (the two ranks are on different "nodes"); the flags make it
#   certain, and an error instead of a silent fallback if TCP is impossible.
# - `--bind-to none`: both "hosts" share this machine's cores, and Open MPI's default binding
#   (per host: local rank 0 to core 0) would pin both ranks to core 0. A later --bind-to in the
#   arguments wins.
# - root only (namespaces need it), hence --allow-run-as-root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
hosts="${LLMFT_NETNS_HOSTS:-${LLMFT_NETNS_A:-llmft-a},${LLMFT_NETNS_B:-llmft-b}}"
subnet="${LLMFT_NETNS_SUBNET:-10.77.0.0/24}"
first_host="${hosts%%,*}"
first_host="${first_host%%:*}"
"$here/netns-hosts.sh" status >/dev/null || {
  echo "tools/mpi/netns-mpirun.sh: error: the namespace hosts are not up" >&2
  echo "  hint: tools/mpi/netns-hosts.sh up" >&2
  exit 1
}
exec ip netns exec "$first_host" mpirun --allow-run-as-root --host "$hosts" \
  --mca plm_rsh_agent "$here/netns-agent.sh" \
  --mca btl tcp,self --mca btl_tcp_if_include "$subnet" --mca oob_tcp_if_include "$subnet" \
  --bind-to none "$@"
