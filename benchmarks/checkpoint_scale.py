"""What a checkpoint costs at recommender scale: Criteo Kaggle's 33.76M rows on 2 ranks.

Trains ``data=synthetic_kaggle`` (26 tables, 33,762,577 rows, dim 16, row-wise Adagrad) on
2 ranks with ``parallel.mp_size=2`` for 20 steps, a checkpoint at steps 10 and 20, then resumes
from step 20 on the same grid and on one process (every table resharded). Prints the time of
each save and load as the run logs it, the checkpoint's size on disk and, for scale, the
median training step::

    python benchmarks/checkpoint_scale.py [--out outputs/checkpoint_scale]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMON = [
    "data=synthetic_kaggle",
    "train.batch_size=4096",
    "train.log_every=10",
    "train.eval_every=20",
    "data.eval_size=4096",
    "output.progress_bar=false",
    "output.tensorboard=false",
]
SAVED = re.compile(r"step (\d+): checkpoint \S+ \(([\d.]+) s\)")
LOADED = re.compile(r"resumed from checkpoint .* at step (\d+) .*; ([\d.]+) s\)")


def train(processes: int, args: list[str]) -> str:
    """The run's log; exits if it failed."""
    prefix = [sys.executable]
    if processes > 1:
        prefix += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    done = subprocess.run(
        [*prefix, str(REPO / "launch" / "train.py"), *COMMON, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=REPO,
    )
    log = done.stdout + done.stderr
    if done.returncode != 0:
        sys.exit(f"run failed ({' '.join(args)}):\n{log[-3000:]}")
    return log


def size_gib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.iterdir()) / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "checkpoint_scale")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    written = args.out / "written"
    log = train(
        2,
        [
            "parallel.mp_size=2",
            "train.steps=20",
            "train.checkpoint_every=10",
            f"hydra.run.dir={written}",
        ],
    )
    for step, seconds in SAVED.findall(log):
        print(f"save, step {step}, 2 ranks: {float(seconds):.1f} s")
    checkpoint = written / "checkpoints" / "step_00000020"
    print(f"checkpoint size: {size_gib(checkpoint):.2f} GiB")
    step = json.loads((written / "metrics.json").read_text())["step_time_median_s"]
    print(f"median training step, 2 ranks: {step:.3f} s")
    for processes, grid in ((2, ["parallel.mp_size=2"]), (1, ["parallel.mp_size=1"])):
        run_dir = args.out / f"resumed_{processes}"
        log = train(
            processes,
            [*grid, "train.steps=20", f"train.resume={checkpoint}", f"hydra.run.dir={run_dir}"],
        )
        for step, seconds in LOADED.findall(log):
            print(f"load, step {step}, {processes} process(es): {float(seconds):.1f} s")


if __name__ == "__main__":
    main()
