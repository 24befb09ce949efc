"""Intra-op thread count of one training process: samples/s per setting, alternating, side by side.

    python benchmarks/threads.py --threads 1 2 --rounds 3 -- train.steps=100

Runs ``python launch/train.py`` (one process) once per thread count per round, in turn, with
``parallel.threads`` set, and prints each setting's median samples/s and AUC and its ratio to the
first setting. A benchmark, not a test: timings are only comparable within one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run(threads: int, overrides: list[str], run_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    command = [
        sys.executable,
        str(REPO / "launch" / "train.py"),
        f"parallel.threads={threads}",
        "output.progress_bar=false",
        "output.tensorboard=false",
        "train.checkpoint_every=0",
        *overrides,
        f"hydra.run.dir={run_dir}",
    ]
    subprocess.run(command, check=True, env=env, cwd=REPO, capture_output=True)
    return json.loads((run_dir / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="settings")
    parser.add_argument("--rounds", type=int, default=3, help="runs per setting, alternating")
    parser.add_argument("overrides", nargs="*", help="training overrides, after --")
    args = parser.parse_args()
    speed: dict[int, list[float]] = {t: [] for t in args.threads}
    auc: dict[int, list[float]] = {t: [] for t in args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for threads in args.threads:
                metrics = one_run(threads, args.overrides, Path(tmp) / f"t{threads}_r{round_}")
                speed[threads].append(metrics["samples_per_sec"])
                auc[threads].append(metrics["auc"])
                print(
                    f"round {round_} threads {threads}: {metrics['samples_per_sec']:.0f} "
                    f"samples/s, auc {metrics['auc']:.4f}",
                    flush=True,
                )
    first = statistics.median(speed[args.threads[0]])
    print(f"cores: {os.cpu_count()}, load now: {os.getloadavg()[0]:.2f}")
    for threads in args.threads:
        median = statistics.median(speed[threads])
        print(
            f"threads {threads}: median {median:.0f} samples/s ({median / first:.2f}x threads "
            f"{args.threads[0]}), auc {statistics.median(auc[threads]):.4f}"
        )


if __name__ == "__main__":
    main()
