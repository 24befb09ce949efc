"""``launch/slurm/train.sbatch`` inside a fake Slurm job.

Stub ``srun`` and ``scontrol`` on PATH record their arguments and environment, so the torchrun
command every node would run is checked exactly: rendezvous on the first node, the job id as the
rendezvous id, the processes per node, the overrides in order, the run directory. One test lets
the stub run it for two nodes on this machine: a real job, its two agents meeting at the
rendezvous the script set up.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from dct.config import RunConfig
from dct.config.store import register_schemas

REPO = Path(__file__).resolve().parents[2]
SCRIPT = str(REPO / "launch" / "slurm" / "train.sbatch")
EXAMPLE_SWEEP = REPO / "launch" / "slurm" / "example_sweep.txt"

# Asked to, srun runs its command once for every node (all on this machine), as a real one would
# on each node of the job; its own options are all --name=value.
SRUN = """#!/usr/bin/env bash
printf '%s\\0' "$@" >"$STUB_LOG/srun.argv"
env -0 >"$STUB_LOG/srun.env"
[[ -n "${STUB_SRUN_RUNS:-}" ]] || exit 0
nodes=1
while [[ "$1" == -* ]]; do
  [[ "$1" == --nodes=* ]] && nodes=${1#--nodes=}
  shift
done
pids=()
for ((node = 0; node < nodes; node++)); do
  "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit "$status"
"""
SCONTROL = """#!/usr/bin/env bash
printf '%s\\0' "$@" >"$STUB_LOG/scontrol.argv"
printf '%s\\n' $STUB_HOSTS
"""

TWO_NODES = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NODELIST": "gpu[07-08]",
    "SLURM_JOB_NUM_NODES": "2",
    "SLURM_GPUS_ON_NODE": "8",
    "SLURM_CPUS_PER_TASK": "32",
    "STUB_HOSTS": "gpu07 gpu08",
}
TINY = [
    "train.steps=4",
    "train.eval_every=4",
    "train.log_every=2",
    "data.eval_size=256",
    "output.progress_bar=false",
]


@dataclass
class Launch:
    """What the script handed to srun, taken apart."""

    srun: list[str]
    torchrun: dict[str, str]
    script: str
    overrides: list[str]
    env: dict[str, str]


def read_argv(path: Path) -> list[str]:
    return path.read_text().split("\0")[:-1]


class FakeSlurm:
    """Runs the script as a job's batch step would, with ``srun`` and ``scontrol`` stubbed."""

    def __init__(self, root: Path):
        self.log = root / "stub_log"
        self.log.mkdir()
        bin_dir = root / "bin"
        bin_dir.mkdir()
        for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        # The caller's Slurm and launcher settings must not leak into the job under test.
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SLURM_", "DCT_")) and key != "OMP_NUM_THREADS"
        }
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env['PATH']}"
        self.env["STUB_LOG"] = str(self.log)

    def run(
        self, args: list[str], job: dict[str, str], cwd: Path = REPO, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", SCRIPT, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.env, **job},
            cwd=cwd,
        )

    def launched(self) -> Launch:
        argv = read_argv(self.log / "srun.argv")
        at = argv.index("dct-torchrun")
        options = argv[at + 1 :]
        script_at = options.index("launch/train.py")
        torchrun = dict(o.removeprefix("--").split("=", 1) for o in options[:script_at])
        env = dict(
            entry.split("=", 1) for entry in (self.log / "srun.env").read_text().split("\0")[:-1]
        )
        return Launch(argv[:at], torchrun, options[script_at], options[script_at + 1 :], env)

    def srun_called(self) -> bool:
        return (self.log / "srun.argv").exists()


@pytest.fixture
def slurm(tmp_path) -> FakeSlurm:
    return FakeSlurm(tmp_path)


def test_two_nodes_meet_on_the_first_with_the_overrides_in_order(slurm):
    overrides = ["parallel.mp_size=4", "train.steps=1000", "model.top_mlp=[64, 32]", "seed=7"]
    done = slurm.run(overrides, TWO_NODES)
    assert done.returncode == 0, done.stderr

    launch = slurm.launched()
    assert read_argv(slurm.log / "scontrol.argv") == ["show", "hostnames", "gpu[07-08]"]
    assert launch.srun == [
        "--nodes=2",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
        "--cpus-per-task=32",
    ]
    assert launch.torchrun == {
        "nnodes": "2",
        "nproc_per_node": "8",
        "rdzv_backend": "c10d",
        "rdzv_endpoint": "gpu07:24242",
        "rdzv_id": "4242",
        "max-restarts": "3",
    }
    assert launch.script == "launch/train.py"
    # A user's hydra.run.dir comes later, so it wins.
    assert launch.overrides == ["hydra.run.dir=outputs/slurm-4242", *overrides]
    assert launch.env["OMP_NUM_THREADS"] == "4"  # 32 CPUs / 8 processes


def test_settings_from_the_environment_win(slurm):
    settings = {
        "DCT_NPROC_PER_NODE": "2",
        "DCT_RDZV_PORT": "29400",
        "DCT_MAX_RESTARTS": "0",
        "OMP_NUM_THREADS": "3",
    }
    done = slurm.run([], {**TWO_NODES, **settings})
    assert done.returncode == 0, done.stderr

    launch = slurm.launched()
    assert launch.torchrun["nproc_per_node"] == "2"
    assert launch.torchrun["rdzv_endpoint"] == "gpu07:29400"
    assert launch.torchrun["max-restarts"] == "0"
    assert launch.overrides == ["hydra.run.dir=outputs/slurm-4242"]
    assert launch.env["OMP_NUM_THREADS"] == "3"


@pytest.mark.parametrize(
    "allocation, nproc, threads, srun_cpus",
    [
        # --gpus-per-node=a100:4 without --cpus-per-task: the node's CPUs are shared out.
        ({"SLURM_GPUS_PER_NODE": "a100:4", "SLURM_CPUS_ON_NODE": "64"}, "4", "16", None),
        ({"SLURM_GPUS_PER_NODE": "4"}, "4", "1", None),
        # Fewer CPUs than processes: one thread each, never zero.
        ({"SLURM_GPUS_ON_NODE": "8", "SLURM_CPUS_PER_TASK": "2"}, "8", "1", "2"),
    ],
)
def test_processes_and_threads_follow_the_allocation(slurm, allocation, nproc, threads, srun_cpus):
    job = {key: value for key, value in TWO_NODES.items() if not key.startswith("SLURM_GPUS")}
    job.pop("SLURM_CPUS_PER_TASK")
    done = slurm.run([], {**job, **allocation})
    assert done.returncode == 0, done.stderr

    launch = slurm.launched()
    assert launch.torchrun["nproc_per_node"] == nproc
    assert launch.env["OMP_NUM_THREADS"] == threads
    cpus = [option for option in launch.srun if option.startswith("--cpus-per-task")]
    assert cpus == ([f"--cpus-per-task={srun_cpus}"] if srun_cpus else [])


def array_task(task: int, sweep: Path | None) -> dict[str, str]:
    job = {
        **TWO_NODES,
        "SLURM_JOB_ID": str(500 + task),
        "SLURM_ARRAY_JOB_ID": "500",
        "SLURM_ARRAY_TASK_ID": str(task),
    }
    if sweep is not None:
        job["DCT_SWEEP"] = str(sweep)
    return job


def test_an_array_task_adds_its_line_of_the_sweep(slurm, tmp_path):
    sweep = tmp_path / "sweep.txt"
    sweep.write_text(
        "# settings\n"
        "dct.dp.enabled=false\n"
        "\n"
        "   # indented comment\n"
        "dct.dp.enabled=true  dct.dp.density=0.05\n"
        "dct.mp.enabled=true\n"
    )
    done = slurm.run(["train.steps=100", "seed=3"], array_task(1, sweep))
    assert done.returncode == 0, done.stderr

    launch = slurm.launched()
    assert launch.overrides == [
        "hydra.run.dir=outputs/slurm-500_1",
        "train.steps=100",
        "seed=3",
        "dct.dp.enabled=true",
        "dct.dp.density=0.05",
    ]
    # Every task is its own job, with its own rendezvous.
    assert launch.torchrun["rdzv_id"] == "501"
    assert launch.torchrun["rdzv_endpoint"] == "gpu07:20501"


@pytest.mark.parametrize(
    "args, job, says",
    [
        (["train.steps=10"], {}, "not inside a Slurm job"),
        ([], {**TWO_NODES, "SLURM_GPUS_ON_NODE": ""}, "no GPUs allocated per node"),
        ([], {**TWO_NODES, "DCT_NPROC_PER_NODE": "0"}, "no GPUs allocated per node"),
        (["-m", "seed=1,2"], TWO_NODES, "Hydra's -m cannot sweep"),
        (["seed=1,2", "--multirun"], TWO_NODES, "Hydra's --multirun cannot sweep"),
        ([], array_task(0, None), "a job array needs DCT_SWEEP"),
        ([], array_task(4, EXAMPLE_SWEEP), "has no line for array task 4"),
    ],
)
def test_a_job_that_cannot_run_stops_with_one_line(slurm, args, job, says):
    done = slurm.run(args, job)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("train.sbatch: ") and says in done.stderr
    assert not slurm.srun_called()


def test_the_log_opens_in_a_fresh_clone():
    # Slurm creates no directory for --output: a job whose log cannot be opened ends before its
    # first line and leaves no log anywhere. Its directory must be one every clone has.
    outputs = [
        line.removeprefix("#SBATCH --output=")
        for line in Path(SCRIPT).read_text().splitlines()
        if line.startswith("#SBATCH --output=")
    ]
    assert len(outputs) == 1
    log_dir = Path(outputs[0]).parent
    tracked = subprocess.run(
        ["git", "ls-files", "--", str(log_dir)], cwd=REPO, capture_output=True, text=True
    )
    assert not log_dir.is_absolute() and tracked.returncode == 0 and tracked.stdout.strip()


def test_the_example_sweep_composes(tmp_path):
    lines = [
        line.split()
        for line in EXAMPLE_SWEEP.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(lines) == 4
    register_schemas(ConfigStore.instance(), REPO / "configs")
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        for overrides in lines:
            config = compose("train", overrides=["parallel.mp_size=8", *overrides])
            assert isinstance(OmegaConf.to_object(config), RunConfig)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def test_two_nodes_on_this_machine_rendezvous_and_train(slurm, tmp_path):
    # Two agents of one process each meet at the c10d rendezvous, as on two nodes. The job's
    # working directory holds the entry point and configs, as a fresh clone would (no outputs/),
    # and outputs/ fills there, not in the repository.
    work = tmp_path / "work"
    work.mkdir()
    for name in ("launch", "configs"):
        (work / name).symlink_to(REPO / name)
    slurm.env["PYTHONPATH"] = str(REPO)
    host = socket.gethostname()
    job = {
        "SLURM_JOB_ID": "77",
        "SLURM_JOB_NODELIST": host,
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_CPUS_ON_NODE": "1",
        "STUB_HOSTS": f"{host} {host}",
        "STUB_SRUN_RUNS": "1",
        "DCT_NPROC_PER_NODE": "1",
        "DCT_RDZV_PORT": str(free_port()),
    }
    done = slurm.run([*TINY, "parallel.mp_size=2"], job, cwd=work, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    metrics = json.loads((work / "outputs" / "slurm-77" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["mp_size"] == 2 and metrics["steps"] == 4
    assert 0 < metrics["auc"] < 1
