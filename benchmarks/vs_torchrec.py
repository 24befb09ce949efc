"""dct against TorchRec on the same DLRM, same machine, alternating runs in one session.

The model is TorchRec's reference: 26 tables x 100,000 rows x dim 64, 13 dense features, bottom
MLP 13-512-256-64, top MLP 512-256-1, 2 ranks, global batch 4096 (2048 per rank), fp32
communication. TorchRec runs ``../shared/peers/torchrec_dlrm_bench.py`` (table-wise sharding,
FBGEMM's fused table kernel with SGD applied in the backward pass, DDP for the dense part, 8
pre-generated batches of uniform ids) from its own virtualenv; dct runs ``launch/train.py``
once per table kernel (``fbgemm``: the same fused kernel; ``torch``: dct's own) with
``parallel.mp_size=2`` (table-wise here too), SGD for tables and tower at the same
learning rate, uniform ids (``data.zipf_exponent=0``), and its samples/s over training steps,
which exclude reading the batch as TorchRec's pre-generated batches do. Both are reported as
global batch / median step time (TorchRec's median over ranks, dct's on rank 0).

    python benchmarks/vs_torchrec.py --peer-python peer-venv/bin/python --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peers" / "torchrec_dlrm_bench.py"
TABLES, ROWS, DIM, BATCH = 26, 100_000, 64, 4096


def torchrun(python: str, args: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:6])} ... failed:\n{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def peer_run(python: str, steps: int) -> float:
    args = [
        str(PEER), f"--num-tables={TABLES}", f"--num-rows={ROWS}", f"--emb-dim={DIM}",
        f"--batch-size={BATCH // 2}", f"--steps={steps}",
    ]  # fmt: skip
    output = torchrun(python, args)
    found = re.search(r"median step ([0-9.]+) ms", output)
    if found is None:
        sys.exit(f"no median step in TorchRec's output:\n{output[-2000:]}")
    return BATCH / (float(found.group(1)) / 1e3)


def dct_run(steps: int, out: Path, kernel: str) -> float:
    args = [
        str(ROOT / "launch" / "train.py"), f"model.table_kernel={kernel}",
        "parallel.mp_size=2", "parallel.sharding=table",
        f"model.embedding_dim={DIM}", "model.bottom_mlp=[512,256,64]", "model.top_mlp=[512,256]",
        "data.cardinalities=[" + ",".join([str(ROWS)] * TABLES) + "]", "data.zipf_exponent=0",
        "optim=sgd", "optim.tables=sgd", "train.lr=0.1", f"train.batch_size={BATCH}",
        f"train.steps={steps}", f"train.eval_every={steps}", f"data.eval_size={BATCH}",
        "output.progress_bar=false", "output.tensorboard=false", f"hydra.run.dir={out}",
        "train.resume=never",
    ]  # fmt: skip
    torchrun(sys.executable, args)
    return BATCH / json.loads((out / "metrics.json").read_text())["step_time_median_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer-python", required=True, help="the TorchRec venv's python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument(
        "--kernels", nargs="+", default=["fbgemm", "torch"], help="dct's model.table_kernel values"
    )
    args = parser.parse_args()
    if not PEER.is_file():
        sys.exit(f"{PEER} is missing: the TorchRec benchmark lives in ../shared/peers/")
    runs: dict[str, list[float]] = {"TorchRec 1.8": []}
    runs.update({f"dct, table_kernel={kernel}": [] for kernel in args.kernels})
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            runs["TorchRec 1.8"].append(peer_run(args.peer_python, args.steps))
            for kernel in args.kernels:
                out = Path(tmp) / f"r{r}{kernel}"
                runs[f"dct, table_kernel={kernel}"].append(dct_run(args.steps, out, kernel))
            print(
                f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in runs.items()),
                file=sys.stderr,
            )
    print(f"{TABLES} x {ROWS:,} x dim {DIM}, 2 ranks, batch {BATCH}, {args.rounds} rounds\n")
    print("| framework | samples/s per round | median | / TorchRec |\n|---|---|---:|---:|")
    reference = statistics.median(runs["TorchRec 1.8"])
    for name, values in runs.items():
        median = statistics.median(values)
        per_round = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {per_round} | {median:.0f} | {median / reference:.2f} |")


if __name__ == "__main__":
    main()
