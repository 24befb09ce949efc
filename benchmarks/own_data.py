"""dct with its defaults against one-hot logistic regression, on the same preprocessed split.

For a ``dct-preprocess`` directory, trains dct (2 ranks, the default model and schedule, any
extra overrides) once per seed and fits the baseline (``logistic_baseline.py``) once, then
prints a markdown table: each seed's eval AUC and log-loss, their mean, the baseline's, and the
mean AUC difference with its 95 % t-interval over the seeds::

    python benchmarks/own_data.py data/adult --seeds 1 2 3 --out outputs/own_data/adult
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from logistic_baseline import fit_and_score
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]


def train(directory: Path, seed: int, out: Path, overrides: list[str], nproc: int = 2) -> dict:
    run_dir = out / f"seed_{seed}"
    command = [
        "torchrun", "--standalone", f"--nproc_per_node={nproc}", str(ROOT / "launch" / "train.py"),
        "data=tabular", f"data.path={directory}", f"seed={seed}", "train.resume=never",
        "output.progress_bar=false", f"hydra.run.dir={run_dir}", *overrides,
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a dct-preprocess output directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, required=True, help="where the runs go")
    parser.add_argument("--nproc", type=int, default=2, help="ranks per run (default 2)")
    parser.add_argument("--c", type=float, default=1.0, help="the baseline's inverse L2 strength")
    parser.add_argument("overrides", nargs="*", help="extra training overrides")
    args = parser.parse_intermixed_args()
    runs = {
        s: train(args.directory.resolve(), s, args.out, args.overrides, args.nproc)
        for s in args.seeds
    }
    base = fit_and_score(args.directory, args.c)
    print("| run | eval AUC | eval log-loss | eval rows |\n| --- | --- | --- | --- |")
    for seed, m in runs.items():
        print(f"| dct, seed {seed} | {m['auc']:.4f} | {m['logloss']:.4f} | {m['eval_samples']:,} |")
    aucs = [m["auc"] for m in runs.values()]
    mean = statistics.mean(aucs)
    mean_loss = statistics.mean(m["logloss"] for m in runs.values())
    print(f"| dct, mean | **{mean:.4f}** | {mean_loss:.4f} | |")
    print(
        f"| one-hot logistic regression, C={args.c:g} | **{base['auc']:.4f}** "
        f"| {base['logloss']:.4f} | {base['eval_rows']:,} |"
    )
    if len(aucs) > 1:
        half = stats.t.ppf(0.975, len(aucs) - 1) * statistics.stdev(aucs) / len(aucs) ** 0.5
        gain = mean - base["auc"]
        print(
            f"\nAUC, dct - baseline: {gain:+.4f} [{gain - half:+.4f}, {gain + half:+.4f}] "
            "(95 % t-interval over the seeds)"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
