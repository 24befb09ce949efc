"""A torchrun job that loses a worker to ``kill -9`` ends as if nothing happened.

Runs the job below twice, once left alone and once with one worker killed by SIGKILL once the
run has logged step ``--kill-at``; torchrun restarts the workers, which resume from the last
checkpoint. Prints both runs' ``auc`` and ``logloss`` and every ``metrics.json`` key that
differs (only times and memory may)::

    torchrun --nproc_per_node=2 --max-restarts=2 launch/train.py parallel.mp_size=2 \\
        train.steps=400 train.checkpoint_every=50 hydra.run.dir=DIR

Usage: ``python benchmarks/kill_and_resume.py [--kill-at 230] [--out outputs/kill_and_resume]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARGS = ["parallel.mp_size=2", "train.steps=400", "train.checkpoint_every=50"]


def start(run_dir: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--max-restarts=2",
        str(REPO / "launch" / "train.py"),
        *ARGS,
        "output.progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    log = (run_dir.parent / f"{run_dir.name}.log").open("w")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def last_step(run_dir: Path) -> int:
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return int(json.loads(lines[-1])["step"])
    except (OSError, IndexError, ValueError, KeyError):
        return 0


def workers(agent: int) -> list[int]:
    children = Path(f"/proc/{agent}/task/{agent}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill-at", type=int, default=230, help="kill once this step is logged")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "kill_and_resume")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)

    alone, killed = args.out / "uninterrupted", args.out / "killed"
    if start(alone).wait() != 0:
        sys.exit(f"the uninterrupted run failed: see {alone}.log")
    job = start(killed)
    while last_step(killed) < args.kill_at:
        if job.poll() is not None:
            sys.exit(f"the run ended before step {args.kill_at}: see {killed}.log")
        time.sleep(0.1)
    victim = workers(job.pid)[-1]
    os.kill(victim, signal.SIGKILL)
    print(f"killed worker {victim} after step {last_step(killed)} was logged")
    if job.wait() != 0:
        sys.exit(f"the killed run did not finish: see {killed}.log")
    resumed = [line for line in Path(f"{killed}.log").read_text().splitlines() if "resumed" in line]
    print(*(line.split("] - ")[-1] for line in resumed), sep="\n")

    a, b = (json.loads((d / "metrics.json").read_text()) for d in (alone, killed))
    print(f"uninterrupted: auc {a['auc']!r} logloss {a['logloss']!r}")
    print(f"killed:        auc {b['auc']!r} logloss {b['logloss']!r}")
    print("metrics.json keys that differ:", sorted(k for k in a if a[k] != b.get(k)))


if __name__ == "__main__":
    main()
