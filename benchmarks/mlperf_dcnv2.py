"""``experiment=mlperf_dcnv2`` (scaled) against TorchRec's DLRM_DCN, same shape, alternating runs.

Both train MLPerf's DLRM-DCNv2 (dim 128, bottom 13-512-256-128, 3 cross layers of rank 512,
top 1024-1024-512-256-1, Adagrad at 0.005) on the experiment's multi-hot shape (26 features
with MLPerf's bag sizes, tables capped at ``data.max_rows``) on 2 ranks, tables placed
table-wise, FBGEMM's fused kernel on both sides, global batch 1,024, uniform ids. TorchRec runs
``benchmarks/torchrec_dcn.py`` from its own virtualenv on batches made before timing; dct runs
``launch/train.py experiment=mlperf_dcnv2 parallel.mp_size=2`` and its samples/s is the global
batch over the median training step, reading the batch excluded (reported beside it). Peak
RSS is the largest rank's.

    python benchmarks/mlperf_dcnv2.py --peer-python peer-venv/bin/python --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from vs_torchrec import torchrun

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "configs" / "experiment" / "mlperf_dcnv2.yaml"
PEER = ROOT / "benchmarks" / "torchrec_dcn.py"


def shape() -> dict:
    """The experiment's data shape, its tables capped at ``data.max_rows``."""
    cfg = yaml.safe_load(EXPERIMENT.read_text())
    data, cap = cfg["data"], cfg["data"]["max_rows"]
    return {
        "rows": [min(rows, cap) for rows in data["cardinalities"]],
        "bags": data["bag_sizes"],
        "batch": cfg["train"]["batch_size"],
    }


def peer_run(python: str, steps: int, sizes: dict) -> dict:
    output = torchrun(
        python,
        [
            str(PEER),
            "--rows=" + ",".join(map(str, sizes["rows"])),
            "--bag-sizes=" + ",".join(map(str, sizes["bags"])),
            f"--batch-size={sizes['batch'] // 2}",
            f"--steps={steps}",
        ],
    )
    found = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    return {
        "samples_per_s": sizes["batch"] / found["median_step_s"],
        "peak_rss_gb": max(found["peak_rss_bytes"]) / 1e9,
    }


def dct_run(steps: int, out: Path, sizes: dict) -> dict:
    torchrun(
        sys.executable,
        [
            str(ROOT / "launch" / "train.py"), "experiment=mlperf_dcnv2", "parallel.mp_size=2",
            "parallel.sharding=table", "model.table_kernel=fbgemm", "data.zipf_exponent=0",
            f"train.steps={steps}", f"train.eval_every={steps}", f"data.eval_size={sizes['batch']}",
            "output.progress_bar=false", "output.tensorboard=false", f"hydra.run.dir={out}",
        ],
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "samples_per_s": sizes["batch"] / metrics["step_time_median_s"],
        "peak_rss_gb": metrics["peak_rss_bytes"] / 1e9,
        "read_s": metrics["read_time_median_s"],
        "step_s": metrics["step_time_median_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer-python", required=True, help="the TorchRec venv's python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    args = parser.parse_args()
    sizes = shape()
    runs: dict[str, list[dict]] = {"TorchRec 1.8 DLRM_DCN": [], "dct model=dlrm_dcn": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            runs["TorchRec 1.8 DLRM_DCN"].append(peer_run(args.peer_python, args.steps, sizes))
            runs["dct model=dlrm_dcn"].append(dct_run(args.steps, Path(tmp) / f"r{r}", sizes))
            print(
                f"round {r + 1}: "
                + ", ".join(f"{k} {v[-1]['samples_per_s']:.0f}" for k, v in runs.items()),
                file=sys.stderr,
            )
    reference = statistics.median(r["samples_per_s"] for r in runs["TorchRec 1.8 DLRM_DCN"])
    print(
        f"{len(sizes['rows'])} tables, {sum(sizes['rows']):,} rows, bags of "
        f"{sum(sizes['bags'])} ids a sample, 2 ranks, global batch {sizes['batch']}, "
        f"{args.steps} steps, {args.rounds} rounds\n"
    )
    print(
        "| framework | samples/s per round | median | / TorchRec | peak RSS, largest rank "
        "(median) |\n|---|---|---:|---:|---:|"
    )
    for name, results in runs.items():
        rates = [r["samples_per_s"] for r in results]
        rss = statistics.median(r["peak_rss_gb"] for r in results)
        median = statistics.median(rates)
        print(
            f"| {name} | {', '.join(f'{v:.0f}' for v in rates)} | {median:.0f} | "
            f"{median / reference:.2f} | {rss:.2f} GB |"
        )
    reads = [r["read_s"] / r["step_s"] for r in runs["dct model=dlrm_dcn"]]
    print(f"\ndct's reading (outside its samples/s): {statistics.median(reads):.0%} of a step")


if __name__ == "__main__":
    main()
