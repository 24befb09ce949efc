"""The embedding all-to-all's codecs on a simulated 4-host 1 Gbit/s cluster, next to TorchRec's.

    sudo python benchmarks/a2a_cluster.py --out docs/a2a_compressed/cluster \
        --peer-python /path/to/peer-venv/bin/python          # about 30 minutes on 2 cores

One process per host (``launch/sim_cluster.sh``), tables sharded over all 4 (``parallel.mp_size
=4``), so every sample's pooled vectors cross the network. The model is dct's default DLRM
widened to TorchRec's reference dim of 64 (26 tables of 100,000 rows, bottom MLP 13-64-64, top
MLP 64-32-1), SGD in FBGEMM's fused kernel, global batch 1,024; TorchRec runs the same shapes in
``../shared/peers/torchrec_dlrm_bench.py`` (table-wise sharding, the same fused kernel) with no
codec, and with its FP16 and BF16 qcomms. dct reads its Zipf-skewed synthetic ids, TorchRec its
own uniform ones: codec bytes do not depend on the ids, de-duplication does (it finds nothing
to remove in uniform ids over 100,000 rows). Rounds alternate every program, so the machine's
noise falls on all alike; reported are per-round medians of step time and their median.

Bytes are per rank and training step, pooled vectors only, forward plus backward (dct: its
``mp`` channel over the last logging interval, training steps only; TorchRec: what its
float all-to-alls hand to other ranks). TorchRec also sends every sample's ids to the rank that
owns the table (its int all-to-all, reported apart); dct's ranks read the ids of their group's
samples from the data and send none.
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

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT.parent / "shared" / "peers" / "torchrec_dlrm_bench.py"
HOSTS, RATE, TABLES, ROWS, DIM, BATCH = 4, "1gbit", 26, 100_000, 64, 1024
DCT_SETTINGS = {
    "dct dense (fp32)": (),
    "dct fp16": ("dct.mp.codec=fp16",),
    "dct int8": ("dct.mp.codec=int8",),
    "dct int4": ("dct.mp.codec=int4",),
    "dct dedup (fp32)": ("dct.mp.dedup=true",),
    "dct dedup int4 (experiment=a2a_compressed)": ("experiment=a2a_compressed",),
    "dct DCT-MP top-k 5%": (
        "dct.mp.enabled=true",
        "dct.mp.density=0.05",
        "dct.mp.value_dtype=float16",
    ),
}
PEER_SETTINGS = {
    "TorchRec fp32": "none",
    "TorchRec FP16 qcomms": "fp16",
    "TorchRec BF16 qcomms": "bf16_nofallback",
}


def cluster(args: argparse.Namespace, logs: Path, script: list[str], env: dict) -> None:
    command = [
        "bash", str(ROOT / "launch" / "sim_cluster.sh"), f"--hosts={HOSTS}", f"--rate={RATE}",
        f"--timeout={args.timeout}", f"--logs={logs}", "--", *script,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"a2a_cluster: {' '.join(command)} failed:\n{done.stderr[-3000:]}")


def dct_run(name: str, overrides: tuple[str, ...], run_dir: Path, args) -> dict:
    script = [
        "launch/train.py", f"parallel.mp_size={HOSTS}", f"train.batch_size={BATCH}",
        "data.cardinalities=[" + ",".join([str(ROWS)] * TABLES) + "]",
        f"model.embedding_dim={DIM}", f"model.bottom_mlp=[64,{DIM}]", "optim=sgd",
        "optim.tables=sgd", "model.table_kernel=fbgemm",
        f"train.steps={args.steps}", f"train.log_every={args.steps // 2}",
        f"train.eval_every={args.steps}", "train.resume=never", "output.progress_bar=false",
        "output.tensorboard=false", f"hydra.run.dir={run_dir}", *overrides,
    ]  # fmt: skip
    cluster(args, run_dir / "hosts", script, dict(os.environ, OMP_NUM_THREADS="1"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    last = [r for line in lines if "bytes/mp_sent_per_step" in (r := json.loads(line))][-1]
    return {
        "step_s": metrics["step_time_median_s"],
        "mp_bytes": last["bytes/mp_sent_per_step"],
        "mp_dense": last["bytes/mp_dense_per_step"],
        "id_bytes": 0.0,
        "dedup_share": metrics["mp_dedup_share"],
    }


def peer_run(qcomms: str, run_dir: Path, args) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / "peer.json"
    script = [
        str(PEER), f"--num-tables={TABLES}", f"--num-rows={ROWS}", f"--emb-dim={DIM}",
        f"--bottom-mlp=64,{DIM}", "--top-mlp=64,32,1", f"--batch-size={BATCH // HOSTS}",
        f"--steps={args.steps}", f"--qcomms={qcomms}", f"--json-out={out}",
    ]  # fmt: skip
    venv_bin = str(Path(args.peer_python).parent)
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{venv_bin}:{os.environ['PATH']}")
    cluster(args, run_dir / "hosts", script, env)
    summary = json.loads(out.read_text())
    per_step = summary["per_rank"][0]["bytes_per_step"]

    def remote(kind: str) -> float:
        return sum(v for k, v in per_step.items() if re.fullmatch(rf"\w+/{kind}/sent_remote", k))

    return {
        "step_s": summary["median_step_s"],
        "mp_bytes": remote("float"),
        "mp_dense": None,  # the fp32 run's bytes: rank 0's share of the tables is TorchRec's plan
        "id_bytes": remote("int"),
        "dedup_share": None,
    }


def report(results: dict[str, list[dict]], command: str) -> str:
    base = statistics.median(r["step_s"] for r in results["dct dense (fp32)"])
    peer_dense = results["TorchRec fp32"][0]["mp_bytes"]
    lines = [
        "# The embedding all-to-all on a simulated cluster: dct's codecs and TorchRec's",
        "",
        f"Made by `{command}`.",
        "",
        f"{HOSTS} hosts at {RATE}, one process each, tables sharded over all of them; "
        f"{TABLES} tables x {ROWS:,} rows x dim {DIM}, global batch {BATCH}. Bytes per rank "
        "and training step (pooled vectors, forward + backward).",
        "",
        "| setting | MP bytes / step | MP ratio | rows left out by dedup | ids sent / step "
        "| median step (ms), per round | step vs dct dense |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, runs in results.items():
        step = statistics.median(r["step_s"] for r in runs)
        first = runs[0]
        share = "" if first["dedup_share"] is None else f"{first['dedup_share']:.1%}"
        rounds = ", ".join(f"{1e3 * r['step_s']:.0f}" for r in runs)
        lines.append(
            f"| {name} | {first['mp_bytes']:,.0f} "
            f"| {(first['mp_dense'] or peer_dense) / first['mp_bytes']:.2f} "
            f"| {share} | {first['id_bytes']:,.0f} | {rounds} | {step / base:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--peer-python", required=True, help="python of TorchRec's virtualenv")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("a2a_cluster: the simulated cluster needs root (network namespaces): use sudo")
    results: dict[str, list[dict]] = {name: [] for name in [*DCT_SETTINGS, *PEER_SETTINGS]}
    for i in range(args.rounds):
        for name, overrides in DCT_SETTINGS.items():
            slug = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")
            results[name].append(dct_run(name, overrides, args.out / "runs" / f"{slug}_{i}", args))
            print(f"round {i}: {name}: {results[name][-1]}", flush=True)
        for name, qcomms in PEER_SETTINGS.items():
            slug = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")
            results[name].append(peer_run(qcomms, args.out / "runs" / f"{slug}_{i}", args))
            print(f"round {i}: {name}: {results[name][-1]}", flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    command = " ".join(["python", "benchmarks/a2a_cluster.py", *sys.argv[1:]])
    (args.out / "README.md").write_text(report(results, command))
    print(f"report: {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
