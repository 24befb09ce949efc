"""Does a step cost grow with the rows a table stores? Median step time at 10k to 10M rows a table.

Every setting is the default DLRM (dim 16) on 2 ranks, ``parallel.mp_size=2``, global batch 4096,
Zipf-skewed synthetic ids, trained by ``launch/train.py`` under torchrun; only the table sizes
change: 26 tables of 10k, 100k and 1M rows, and Criteo Kaggle's 26 cardinalities
(``data=synthetic_kaggle``, 33.76M rows), each with dct's table kernel and FBGEMM's fused one
(``model.table_kernel``). Settings run in alternating rounds so a busy machine slows them
alike. Reported per setting: the median training step over rounds (reading the batch excluded,
as ``metrics.json``'s ``step_time_median_s``), its ratio to the 10k-row step, the median batch
read, and the worst rank's training state, peak RSS and their ratio.

    python benchmarks/embedding_scale.py --rounds 3 --steps 60
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

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "26 x 10k": ["data.cardinalities=[" + ",".join(["10000"] * 26) + "]"],
    "26 x 100k": ["data.cardinalities=[" + ",".join(["100000"] * 26) + "]"],
    "26 x 1M": ["data.cardinalities=[" + ",".join(["1000000"] * 26) + "]"],
    "Kaggle (33.76M rows)": ["data=synthetic_kaggle"],
}


def run(overrides: list[str], steps: int, out: Path) -> dict[str, float]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(ROOT / "launch" / "train.py"), "parallel.mp_size=2", "train.batch_size=4096",
        f"train.steps={steps}", f"train.eval_every={steps}", "data.eval_size=4096",
        "output.progress_bar=false", "output.tensorboard=false", f"hydra.run.dir={out}",
        "train.resume=never", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True)
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--kernels", nargs="+", default=["torch", "fbgemm"])
    args = parser.parse_args()
    results = {(k, name): [] for k in args.kernels for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for i, ((kernel, name), runs) in enumerate(results.items()):
                out = Path(tmp) / f"round{round_index}-run{i}"
                overrides = [*SETTINGS[name], f"model.table_kernel={kernel}"]
                runs.append(run(overrides, args.steps, out))
                step = runs[-1]["step_time_median_s"]
                print(
                    f"round {round_index + 1}: {kernel} {name}: {1e3 * step:.1f} ms",
                    file=sys.stderr,
                )
    print(
        f"2 ranks, mp_size=2, global batch 4096, dim 16, {args.steps} steps, "
        f"{args.rounds} alternating rounds"
    )
    for kernel in args.kernels:
        report(kernel, {name: results[kernel, name] for name in SETTINGS})


def report(kernel: str, results: dict[str, list[dict[str, float]]]) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    base = median("26 x 10k", "step_time_median_s")
    print(f"\nmodel.table_kernel={kernel}\n")
    print(
        "| tables | step ms (median) | step / 10k step | read ms | state per rank (max) "
        "| peak RSS per rank (max) | RSS / state (worst rank) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in SETTINGS:
        step = median(name, "step_time_median_s")
        print(
            f"| {name} | {1e3 * step:.1f} | {step / base:.2f} "
            f"| {1e3 * median(name, 'read_time_median_s'):.1f} "
            f"| {median(name, 'state_bytes') / 2**30:.2f} GiB "
            f"| {median(name, 'peak_rss_bytes') / 2**30:.2f} GiB "
            f"| {median(name, 'rss_over_state'):.2f} |"
        )


if __name__ == "__main__":
    main()
