#!/usr/bin/env bash
# launch/slurm/train.sbatch under a real Slurm: a one-node cluster on this machine, private to
# this script (its own munge key and socket, slurm.conf, state directory and ports, all in a
# temporary directory), and three checks:
#   requeue   a job requeued (scontrol requeue) after its first checkpoint resumes from it in the
#             same run directory and ends with the metrics of the same job never interrupted;
#   continue  a new job given that run directory (hydra.run.dir=...) resumes from its last
#             checkpoint and trains on, as one continues a job its time limit ended;
#   array     a two-task job array runs each task with its own line of a sweep file.
# Needs root and Slurm's daemons (Debian, Ubuntu: apt-get install slurmctld slurmd slurm-client
# munge). Run it from the repository root:
#
#   benchmarks/slurm_single_node.sh
#
# Jobs are submitted from a fresh checkout in the temporary directory: the files git tracks, and
# those it would (uncommitted work is checked too), without outputs/ or anything else ignored,
# as after a git clone. They run 2 processes on CPU (DCT_NPROC_PER_NODE=2, no GPU requested);
# their logs are slurm-JOBID*.log and their run directories outputs/slurm-JOBID* in that
# checkout, as for any submission. The daemons are stopped on every exit path, and the temporary
# directory removed unless the check failed.
set -euo pipefail

fail() {
  echo "slurm_single_node.sh: $*" >&2
  exit 2
}

[[ $EUID -eq 0 ]] || fail "needs root to run Slurm's daemons: run it with sudo"
for tool in munged mungekey slurmctld slurmd sbatch squeue scontrol sinfo python; do
  command -v "$tool" >/dev/null \
    || fail "'$tool' is not installed (apt-get install slurmctld slurmd slurm-client munge)"
done
[[ -f launch/slurm/train.sbatch ]] || fail "run it from the repository root"
git rev-parse --show-toplevel >/dev/null 2>&1 || fail "$PWD is not a git checkout"

dir=$(mktemp -d -t dct_slurm.XXXXXX)
chmod 755 "$dir" # munged wants every directory above its socket searchable
daemons=()
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [[ ${#daemons[@]} -gt 1 ]]; then
    squeue -h -o %A | xargs -r scancel 2>/dev/null || true
    for _ in {1..30}; do
      [[ -z "$(squeue -h 2>/dev/null)" ]] && break
      sleep 1
    done
  fi
  for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do
    kill "${daemons[$i]}" 2>/dev/null || true
    wait "${daemons[$i]}" 2>/dev/null || true
  done
  if [[ $code -eq 0 ]]; then
    rm -rf "$dir"
  else
    echo "slurm_single_node.sh: failed; the daemons' logs and the jobs' checkout are in $dir" >&2
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$dir/state" "$dir/spool"
mungekey --create --keyfile="$dir/munge.key"
munged --foreground --force --key-file="$dir/munge.key" --socket="$dir/munge.sock" \
  --pid-file="$dir/munged.pid" --seed-file="$dir/munged.seed" --log-file="$dir/munged.log" \
  >"$dir/munged.out" 2>&1 &
daemons+=($!)

# The smallest configuration that runs batch jobs without cgroups or accounting. Ports other than
# Slurm's defaults keep clear of a cluster this machine may already belong to.
cat >"$dir/slurm.conf" <<EOF
ClusterName=dct-check
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
FirstJobId=$(($(date +%s) % 10000000 + 100000))
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=check Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
for _ in {1..20}; do
  [[ -S "$dir/munge.sock" ]] && break
  sleep 0.5
done
slurmctld -D -i >"$dir/slurmctld.out" 2>&1 &
daemons+=($!)
slurmd -D >"$dir/slurmd.out" 2>&1 &
daemons+=($!)
for _ in {1..60}; do
  [[ "$(sinfo -h -o %t 2>/dev/null)" == idle ]] && break
  sleep 0.5
done
[[ "$(sinfo -h -o %t 2>/dev/null)" == idle ]] || fail "the node did not come up; see $dir/*.log"

# A fresh checkout: what a clone of this one, its uncommitted work committed, would hold.
checkout="$dir/checkout"
mkdir "$checkout"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' file; do [[ -e "$file" ]] && printf '%s\0' "$file"; done \
  | tar --null -T - -cf - | tar -C "$checkout" -xf -
[[ ! -e "$checkout/outputs" ]] || fail "outputs/ is tracked by git: a clone would have it"
cd "$checkout"
# The jobs run that checkout, dct installed or not, and size their own threads.
export PYTHONPATH="$checkout${PYTHONPATH:+:$PYTHONPATH}"
unset OMP_NUM_THREADS
export DCT_NPROC_PER_NODE=2
submit() {
  sbatch --parsable --nodes=1 --gpus-per-node=0 --cpus-per-task="$cpus" --time=15 "$@"
}
finish() {
  local job=$1
  for _ in {1..600}; do
    [[ -z "$(squeue -h -j "$job" 2>/dev/null)" ]] && return 0
    sleep 1
  done
  fail "job $job still running after 10 minutes"
}

run=(parallel.mp_size=2 train.steps=300 train.log_every=10 train.checkpoint_every=50
  train.eval_every=150 data.eval_size=512 output.progress_bar=false)

requeued=$(submit launch/slurm/train.sbatch "${run[@]}")
until compgen -G "outputs/slurm-$requeued/checkpoints/step_*[0-9]" >/dev/null; do
  [[ -n "$(squeue -h -j "$requeued")" ]] \
    || fail "job $requeued ended before its first checkpoint; its log: $checkout/slurm-$requeued.log"
  sleep 0.2
done
scontrol requeue "$requeued"
# Slurm holds a requeued job for two minutes before it may start again; not worth waiting here.
for _ in {1..60}; do
  [[ "$(squeue -h -j "$requeued" -o %T)" == PENDING ]] && break
  sleep 0.5
done
scontrol update JobId="$requeued" StartTime=now
finish "$requeued"
reference=$(submit launch/slurm/train.sbatch "${run[@]}")
finish "$reference"
cp "outputs/slurm-$reference/metrics.json" "$dir/uninterrupted.json"
# As a job that ran out of time is continued: a new job, pointed at the old run directory.
continued=$(submit launch/slurm/train.sbatch "${run[@]}" train.steps=350 \
  "hydra.run.dir=outputs/slurm-$reference")
finish "$continued"

printf '%s\n' "# two settings, one a task" "seed=1" "" "seed=2" >"$dir/sweep.txt"
array=$(DCT_SWEEP="$dir/sweep.txt" submit --array=0-1 --output="slurm-%A_%a.log" \
  launch/slurm/train.sbatch parallel.mp_size=2 train.steps=20 train.log_every=10 \
  train.eval_every=20 data.eval_size=512 output.progress_bar=false)
finish "$array"

restarts=$(scontrol show job "$requeued" | grep -o 'Restarts=[0-9]*')
echo "slurm_single_node.sh: $(sinfo --version), node $host with $cpus CPUs, 2 processes a job"
python - "$dir/uninterrupted.json" "$requeued" "$reference" "$continued" "$array" \
  "$restarts" <<'EOF'
import json
import re
import sys
from pathlib import Path

uninterrupted, requeued, reference, continued, array, restarts = sys.argv[1:]
OUTPUTS = Path("outputs")
KEYS = ("steps", "auc", "logloss", "final_train_loss", "dp_bytes_sent", "mp_bytes_sent")


def metrics(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def run_metrics(run: str) -> dict:
    return metrics(OUTPUTS / f"slurm-{run}" / "metrics.json")


def resumed(job: str) -> str:
    """The checkpoint the job's log says it resumed from, and at which step."""
    log = Path(f"slurm-{job}.log")
    found = re.search(r"resumed from checkpoint (\S+) at step (\d+)", log.read_text())
    return f"{found[1]} at step {found[2]}" if found else ""


def summary(found: dict) -> str:
    return ", ".join(f"{key} {found.get(key)}" for key in KEYS)


again, once = run_metrics(requeued), metrics(Path(uninterrupted))
requeue_ok = (
    restarts == "Restarts=1"
    and resumed(requeued).endswith(f"slurm-{requeued}/checkpoints/step_00000050 at step 50")
    and bool(once)
    and all(again.get(key) == once[key] for key in KEYS)
)
print(f"requeue   job {requeued}: {restarts}, resumed from {resumed(requeued) or 'nothing'}")
print(f"          requeued:      {summary(again)}")
print(f"          uninterrupted: {summary(once)} (job {reference})")

longer = run_metrics(reference)
continue_ok = (
    resumed(continued).endswith(f"slurm-{reference}/checkpoints/step_00000300 at step 300")
    and longer.get("steps") == 350
    and not (OUTPUTS / f"slurm-{continued}").exists()
)
print(f"continue  job {continued} in outputs/slurm-{reference}: resumed from {resumed(continued)}")
print(f"          {summary(longer)}")

array_ok = True
for task in (0, 1):
    run = f"{array}_{task}"
    overrides = OUTPUTS / f"slurm-{run}" / ".hydra" / "overrides.yaml"
    given = overrides.read_text().split() if overrides.exists() else []
    seeds = [word for word in given if word.startswith("seed=")]
    found = run_metrics(run)
    logged = Path(f"slurm-{run}.log").exists()
    array_ok &= logged and found.get("steps") == 20 and seeds == [f"seed={task + 1}"]
    print(f"array     task {run}: {' '.join(seeds)}, {summary(found)}")

ok = requeue_ok and continue_ok and array_ok
print("slurm_single_node.sh: " + ("PASS" if ok else "FAIL"))
sys.exit(0 if ok else 1)
EOF
