#!/usr/bin/env bash
# A simulated cluster on one machine: N hosts (network namespaces) joined by veth pairs through a
# bridge, every host's link shaped with tc in both directions, and one torchrun per host
# (--nnodes=N --node_rank=i) rendezvousing on host 0's address. Needs root.
#
#   launch/sim_cluster.sh [--hosts 4] [--rate 1gbit] [--delay 0] [--procs-per-host 1]
#                         [--timeout 900] [--logs DIR] -- SCRIPT [ARGS...]
#
# e.g.  launch/sim_cluster.sh --hosts 4 -- launch/train.py parallel.mp_size=4 hydra.run.dir=out
#
# --rate is each host's link speed (tc rate syntax: 1gbit, 100mbit). --delay adds one-way latency
# (e.g. 0.5ms) and needs the kernel's sch_netem; a kernel without it is refused, never ignored.
# Host i's output goes to DIR/host<i>.log (host 0's also to the terminal); DIR/wire_bytes.json
# records the bytes each host's interface really sent and received. Traffic stays between the
# cluster's own namespaces: the bridge has no address and no route out. Everything the script
# made is removed on every exit path; a job still running after --timeout seconds is killed.
set -euo pipefail

hosts=4 rate=1gbit delay=0 procs=1 limit_s=900 logs=""
usage() { sed -n '6,7p' "$0" | sed 's/^# *//' >&2; exit 2; }
fail() { echo "sim_cluster.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  [[ "$1" == --*=* ]] && set -- "${1%%=*}" "${1#*=}" "${@:2}"
  case "$1" in
    --hosts) hosts="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --delay) delay="$2"; shift 2 ;;
    --procs-per-host) procs="$2"; shift 2 ;;
    --timeout) limit_s="$2"; shift 2 ;;
    --logs) logs="$2"; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[[ $# -ge 1 ]] || usage
[[ $EUID -eq 0 ]] || fail "needs root to create network namespaces: run it with sudo"
[[ "$hosts" =~ ^[0-9]+$ && "$hosts" -ge 1 && "$hosts" -le 200 ]] || fail "--hosts $hosts: use 1 to 200"
[[ "$procs" =~ ^[0-9]+$ && "$procs" -ge 1 ]] || fail "--procs-per-host $procs: use a count >= 1"
[[ "$limit_s" =~ ^[0-9]+$ && "$limit_s" -ge 1 ]] || fail "--timeout $limit_s: use whole seconds"
for tool in ip tc torchrun timeout; do
  command -v "$tool" >/dev/null || fail "'$tool' is not installed (ip and tc come with iproute2)"
done

tag="d$$"
bridge="${tag}br"
subnet="10.231.0"
master="${subnet}.1"
logs="${logs:-$(mktemp -d -t sim_cluster.XXXXXX)}"
mkdir -p "$logs"
namespaces=()

cleanup() {
  local code=$?
  trap - EXIT INT TERM
  for ns in "${namespaces[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
  done
  sleep 0.5
  for ns in "${namespaces[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The qdisc that gives a link its speed (and latency, if asked for).
shape() {
  local dev="$1" ns_exec=("${@:2}")
  if [[ "$delay" == "0" ]]; then
    "${ns_exec[@]}" tc qdisc add dev "$dev" root tbf rate "$rate" burst 256kb latency 100ms \
      2>/dev/null || fail "--rate $rate: tc does not take it; use its rate syntax, e.g. 1gbit or 100mbit"
  else
    "${ns_exec[@]}" tc qdisc add dev "$dev" root netem delay "$delay" rate "$rate" limit 100000 \
      2>/dev/null || fail "--delay $delay needs the kernel's sch_netem, which this kernel lacks; use --delay 0"
  fi
}

ip link add "$bridge" type bridge
ip link set "$bridge" up
for ((i = 0; i < hosts; i++)); do
  ns="${tag}h${i}"
  ip netns add "$ns"
  namespaces+=("$ns")
  ip link add "${ns}p" type veth peer name eth0 netns "$ns"
  ip link set "${ns}p" master "$bridge" up
  ip netns exec "$ns" ip addr add "${subnet}.$((i + 1))/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  ip netns exec "$ns" ip link set lo up
  shape eth0 ip netns exec "$ns"
  shape "${ns}p"
done

echo "sim_cluster.sh: $hosts hosts x $procs processes, links $rate, delay $delay, logs in $logs" >&2
declare -A host_of
for ((i = 0; i < hosts; i++)); do
  ns="${tag}h${i}"
  run=(ip netns exec "$ns" env GLOO_SOCKET_IFNAME=eth0 NCCL_SOCKET_IFNAME=eth0
    OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
    timeout --kill-after=10 "$limit_s"
    torchrun --nnodes="$hosts" --nproc_per_node="$procs" --node_rank="$i"
    --master_addr="$master" --master_port=29500 "$@")
  if [[ $i -eq 0 ]]; then
    "${run[@]}" > >(tee "$logs/host0.log") 2>&1 &
  else
    "${run[@]}" >"$logs/host$i.log" 2>&1 &
  fi
  host_of[$!]=$i
done

# The first host to fail ends the job: its peers would only wait for it until their timeout.
status=0
while [[ ${#host_of[@]} -gt 0 ]]; do
  finished=""
  wait -n -p finished "${!host_of[@]}" || status=$?
  failed=${host_of[$finished]}
  unset "host_of[$finished]"
  if [[ $status -ne 0 ]]; then
    [[ $status -eq 124 ]] && echo "sim_cluster.sh: still running after ${limit_s}s; stopped" >&2
    echo "sim_cluster.sh: host $failed exited with $status; see $logs/host$failed.log" >&2
    break
  fi
done

{
  echo "{"
  for ((i = 0; i < hosts; i++)); do
    stats="/sys/class/net/eth0/statistics"
    sent=$(ip netns exec "${tag}h${i}" cat "$stats/tx_bytes")
    received=$(ip netns exec "${tag}h${i}" cat "$stats/rx_bytes")
    sep=$([[ $i -lt $((hosts - 1)) ]] && echo "," || true)
    echo "  \"host$i\": {\"tx_bytes\": $sent, \"rx_bytes\": $received}$sep"
  done
  echo "}"
} >"$logs/wire_bytes.json"
exit "$status"
