"""The DCT paper's DLRM table for DCT-MP at MLP cuts, reproduced on the synthetic data.

    pip install -e '.[bench]'
    python benchmarks/dct_mp_paper.py --seeds 0 1 2 --steps 300 --out docs/dct_mp_paper

Every run is ``launch/train.py model=dlrm_paper parallel.mp_mode=pipeline`` under torchrun:

- dense: no compression. Pipelined or not, replicated or not, the dense model trains exactly as
  one process does (``tests/distributed/test_golden.py``), so one dense row serves every split;
- 2 workers: one cut after the bottom MLP's second layer, 90 / 95 / 98 % sparsity
  (``dct.mp.density`` 0.1 / 0.05 / 0.02);
- 3 workers: cuts after the second layers of the bottom and top MLPs, 90 / 95 %;
- DP+MP: 2 data-parallel replicas of the 2-worker pipeline (4 workers), 90 / 95 %.

Prints a markdown table (mean ± std over the seeds of AUC, log-loss, accuracy and the MP
bytes ratio) and writes it with the per-run metrics (``results.json``) and a plot of AUC per
setting (``auc.png``) to ``--out``. A benchmark, not a test: about 40 s a run on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = str(REPO / "launch" / "train.py")
TWO, THREE = "model.cuts=[bottom_mlp.1]", "model.cuts=[bottom_mlp.1,top_mlp.1]"
SETTINGS = {
    "dense (any split)": (2, [TWO]),
    "2 workers, 90 %": (2, [TWO, "dct.mp.density=0.1"]),
    "2 workers, 95 %": (2, [TWO, "dct.mp.density=0.05"]),
    "2 workers, 98 %": (2, [TWO, "dct.mp.density=0.02"]),
    "3 workers, 90 %": (3, [THREE, "dct.mp.density=0.1"]),
    "3 workers, 95 %": (3, [THREE, "dct.mp.density=0.05"]),
    "DP+MP, 2x2 workers, 90 %": (4, [TWO, "dct.mp.density=0.1"]),
    "DP+MP, 2x2 workers, 95 %": (4, [TWO, "dct.mp.density=0.05"]),
}
METRICS = ("auc", "logloss", "accuracy", "mp_ratio")


def run(setting: str, seed: int, steps: int, out: Path) -> dict:
    processes, overrides = SETTINGS[setting]
    compressed = ["dct.mp.enabled=true"] if any("density" in o for o in overrides) else []
    slug = re.sub(r"[^0-9A-Za-z]+", "_", setting).strip("_")  # Hydra's override grammar
    run_dir = out / "runs" / f"{slug}_seed{seed}"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        TRAIN,
        "model=dlrm_paper",
        "parallel.mp_mode=pipeline",
        *overrides,
        *compressed,
        f"seed={seed}",
        f"train.steps={steps}",
        f"train.eval_every={steps}",
        "output.progress_bar=false",
        "output.tensorboard=false",
        f"hydra.run.dir={run_dir}",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    if done.returncode != 0:
        sys.exit(f"{setting}, seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads((run_dir / "metrics.json").read_text())


def spread(values: list[float]) -> float:
    """Sample standard deviation; 0 for a single seed."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):.4f} ± {spread(values):.4f}"


def table(results: dict[str, list[dict]]) -> str:
    lines = ["| setting | AUC | log-loss | accuracy | MP ratio |", "|---|---|---|---|---|"]
    for setting, runs in results.items():
        cells = [mean_std([run[m] for run in runs]) for m in METRICS]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = list(results)
    means = [statistics.fmean(run["auc"] for run in results[n]) for n in names]
    spreads = [spread([run["auc"] for run in results[n]]) for n in names]
    figure, axes = pyplot.subplots(figsize=(9, 4))
    axes.bar(range(len(names)), means, yerr=spreads, capsize=4)
    axes.set_xticks(range(len(names)), names, rotation=30, ha="right")
    axes.set_ylim(min(means) - 0.02, max(means) + 0.02)
    axes.set_ylabel("eval AUC")
    axes.set_title("DCT-MP at MLP cuts, model=dlrm_paper (mean and std over seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("outputs/dct_mp_paper"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {
        setting: [run(setting, seed, args.steps, args.out) for seed in args.seeds]
        for setting in SETTINGS
    }
    markdown = table(results)
    header = f"seeds {args.seeds}, {args.steps} steps of 1,024 samples\n\n"
    (args.out / "table.md").write_text(header + markdown + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "auc.png")
    print(header + markdown)


if __name__ == "__main__":
    main()
