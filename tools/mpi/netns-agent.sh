#!/bin/sh
# Open MPI's "remote shell" for the two namespace hosts of tools/mpi/netns-hosts.sh: used instead
# of ssh through `mpirun --mca plm_rsh_agent tools/mpi/netns-agent.sh --host llmft-a,llmft-b ...`
# (tools/mpi/netns-mpirun.sh passes it).
#
# Open MPI 4.1 calls the agent the way it calls ssh:
#     AGENT [OPTIONS...] HOST WORD...
# where the WORDs are one shell command line cut at spaces, with shell quoting meant for the remote
# shell (e.g. ` orted -mca ess "env" -mca orte_hnp_uri "1234.0;tcp://10.77.0.1:41000" ...`).
# Like ssh, we join the WORDs with spaces and hand the line to sh, but inside the network
# namespace named HOST instead of on another machine, and in a UTS namespace of its own whose
# hostname is HOST (so the ranks' MPI_Get_processor_name and `hostname` differ, as on two
# machines; this machine's hostname is untouched). OPTIONS (ssh-style flags such as -x, which
# Open MPI adds only for ssh, or whatever plm_rsh_args holds) are ignored.
set -eu
me="tools/mpi/netns-agent.sh"
while [ $# -gt 0 ]; do
  case "$1" in
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "$me: usage: $me [OPTIONS] HOST COMMAND... (called by mpirun)" >&2; exit 2; }
host=$1
shift
ip netns list | awk '{print $1}' | grep -qx "$host" || {
  echo "$me: error: no network namespace '$host' (mpirun --host names must be namespaces)" >&2
  echo "  hint: tools/mpi/netns-hosts.sh up" >&2
  exit 1
}
exec ip netns exec "$host" unshare --uts sh -c "hostname '$host' && $*"
