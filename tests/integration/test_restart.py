"""A real ``torchrun --max-restarts`` job survives workers killed with SIGKILL.

A worker kills itself (``tests/integration/faulty_train.py``) while a checkpoint is being
written, then, in the restarted attempt, in the middle of a step, then during an evaluation;
each time torchrun restarts the workers, which resume from the last complete checkpoint
(``train.resume=auto``). The reference is the same job never interrupted: its ``metrics.json``
and ``metrics.jsonl`` must come out the same. Without restarts left, the surviving rank stops
at once with one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAULTY = str(REPO / "tests" / "integration" / "faulty_train.py")
ARGS = [
    "parallel.mp_size=2",
    "train.steps=40",
    "train.batch_size=128",
    "train.log_every=5",
    "train.eval_every=20",
    "train.checkpoint_every=10",
    "data.eval_size=512",
    "output.progress_bar=false",
]
# Metrics that measure the machine, not the training.
MEASURED = {
    "samples_per_sec",
    "step_time_median_s",
    "read_time_median_s",
    "peak_rss_bytes",
    "rss_over_state",
}


def torchrun(run_dir: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    """The job on 2 ranks with ``fault`` (``faulty_train.py``'s ``FAULT``) and 3 restarts."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("FAULT", None)
    if fault is not None:
        env["FAULT"] = fault
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "--max-restarts=3",
        FAULTY,
        *ARGS,
        f"hydra.run.dir={run_dir}",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)


def outputs(run_dir: Path) -> tuple[dict, list[dict]]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [{k: v for k, v in line.items() if k != "train/samples_per_sec"} for line in lines]
    return {k: v for k, v in metrics.items() if k not in MEASURED}, trained


def test_killed_workers_are_restarted_and_finish_as_if_never_killed(tmp_path):
    """Killed writing checkpoint 20 (resumes from 10), at step 25 (from 20), evaluating at
    step 40 (from 30)."""
    uninterrupted = tmp_path / "uninterrupted"
    done = torchrun(uninterrupted)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = tmp_path / "killed"
    done = torchrun(killed, "save@2,step@15,eval@1")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    resumed = [
        line.split(" at step ")[1].split(" ")[0]
        for line in log.splitlines()
        if "resumed from" in line
    ]
    assert resumed == ["10", "20", "30"], log[-3000:]
    assert outputs(killed) == outputs(uninterrupted)
    checkpoints = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert checkpoints == ["step_00000030", "step_00000040"]


def test_without_restarts_the_surviving_rank_stops_with_one_line(tmp_path):
    """Two ranks started by hand (no torchrun to kill the survivor): rank 1 dies mid-step."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}
    env["MASTER_PORT"] = str(29500 + os.getpid() % 1000)
    env.pop("HYDRA_FULL_ERROR", None)
    args = [*ARGS, "train.steps=400", "parallel.timeout_s=30", f"hydra.run.dir={tmp_path}"]
    started = time.monotonic()
    ranks = [
        subprocess.Popen(
            [sys.executable, FAULTY, *args],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank), "FAULT": "step@15"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        for rank in range(2)
    ]
    errors = [process.communicate(timeout=120)[0] for process in ranks]
    assert ranks[1].returncode == -9
    assert ranks[0].returncode == 1
    assert time.monotonic() - started < 90
    failures = [line for line in errors[0].splitlines() if "ERROR" in line]
    assert len(failures) == 1 and "peer error: " in failures[0], errors[0][-2000:]
    assert "parallel.timeout_s=30" in failures[0]
    assert "Traceback" not in errors[0]
    assert not (tmp_path / "metrics.json").exists()
