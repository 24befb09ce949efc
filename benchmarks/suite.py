"""Every compressor on the same model, data and batches: on loopback and on a simulated cluster.

    sudo python benchmarks/suite.py --out docs/suite        # about 40 minutes on 2 cores

Runs ``launch/train.py`` once per (method, place): dense (DDP all-reduce, fp32 all-to-all),
PyTorch's fp16 hook, PowerSGD rank 1 and 4, DCT-DP, plain top-k every step, DCT-MP and DCT-DP +
DCT-MP; on loopback (``torchrun --standalone``) and on ``launch/sim_cluster.sh``: 4 hosts at
``--rate`` (1 Gbit/s), 2 hosts at that rate for the scaling note, and 4 hosts at
``--slow-rate`` (100 Mbit/s). On the main cluster it also runs the DCT paper's timing curves
(step time against ``update_every`` and against DP and MP sparsity). Each run is a fresh job
with the same seed, so every method trains on the same batches. Results go to
``OUT/results.json`` after every run (``--resume`` skips the runs already there), then
``benchmarks/suite_report.py`` writes ``OUT.md`` (``docs/suite.md``) and the plots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import suite_report
from suite_report import Place

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = (
    "pip install -c constraints.txt -e '.[bench]' && "
    "sudo python benchmarks/suite.py --out docs/suite"
)
# The DCT paper's DLRM (``model=dlrm_paper``) with its tables sharded over every host and its dense
# tower data-parallel over every host: the paper's hybrid layout, one process a host.
BASE = (
    "model=dlrm_paper",
    "output.tensorboard=false",
    "output.progress_bar=false",
)


def dct_dp(density: float, update_every: int = 1000) -> tuple[str, ...]:
    return (
        "dct.dp.enabled=true",
        "dct.dp.value_dtype=float16",
        f"dct.dp.density={density:g}",
        f"dct.dp.update_every={update_every}",
    )


def dct_mp(density: float) -> tuple[str, ...]:
    return ("dct.mp.enabled=true", "dct.mp.value_dtype=float16", f"dct.mp.density={density:g}")


def powersgd(rank: int) -> tuple[str, ...]:
    return ("dp_hook.name=powersgd", f"dp_hook.powersgd_rank={rank}")


METHODS = {
    "dense": (),
    "fp16 hook": ("dp_hook.name=fp16",),
    "PowerSGD rank 1": powersgd(1),
    "PowerSGD rank 4": powersgd(4),
    "DCT-DP 1%": dct_dp(0.01),
    "DCT-DP 0.5%": dct_dp(0.005),
    "top-k every step 1%": dct_dp(0.01, update_every=1),
    "DCT-MP 10%": dct_mp(0.1),
    "DCT-MP 5%": dct_mp(0.05),
    "DCT-DP 1% + DCT-MP 10%": dct_dp(0.01) + dct_mp(0.1),
}
DP_SPARSITY = (90, 95, 98, 99, 99.5)
MP_SPARSITY = (75, 90, 95)
UPDATE_EVERY = (1, 10, 100, 1000)


def curves() -> dict[str, dict[str, tuple[str, ...]]]:
    """The paper's timing curves: point label to overrides, per curve."""
    return {
        "update_every (DCT-DP, 95% sparsity)": {
            str(every): dct_dp(0.05, every) for every in UPDATE_EVERY
        },
        "DP sparsity % (DCT-DP, update_every 1000)": {
            f"{s:g}": dct_dp(round(1 - s / 100, 6)) for s in DP_SPARSITY
        },
        "MP sparsity % (DCT-MP)": {f"{s:g}": dct_mp(round(1 - s / 100, 6)) for s in MP_SPARSITY},
        "hybrid (MP 90% + DP 99%) vs dense": {
            "dense": METHODS["dense"],
            "hybrid": METHODS["DCT-DP 1% + DCT-MP 10%"],
        },
    }


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def command(place: Place, overrides: tuple[str, ...], run_dir: Path, args: argparse.Namespace):
    """The job's command line: torchrun on loopback, the simulated cluster otherwise."""
    train = [
        "launch/train.py",
        *BASE,
        f"parallel.mp_size={place.hosts}",
        f"train.steps={args.steps}",
        f"seed={args.seed}",
        *overrides,
        "train.resume=never",  # a measurement, never the continuation of an earlier one
        f"hydra.run.dir={run_dir}",
    ]
    if place.kind == "loopback":
        return ["torchrun", "--standalone", f"--nproc_per_node={place.hosts}", *train]
    return [
        "bash",
        "launch/sim_cluster.sh",
        f"--hosts={place.hosts}",
        f"--rate={place.rate}",
        f"--timeout={args.timeout}",
        f"--logs={run_dir}/hosts",
        "--",
        *train,
    ]


def run_one(place: Place, overrides: tuple[str, ...], args: argparse.Namespace) -> dict:
    """Train once; the run's ``metrics.json``, plus the interface byte counters on the cluster."""
    run_dir = args.out / "runs" / place.key / (slug(" ".join(overrides)) or "dense")
    cmd = command(place, overrides, run_dir, args)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    started = time.monotonic()
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout + 60
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise SystemExit(f"suite: {' '.join(cmd)}\nexited with {done.returncode}:\n{tail}")
    result = {"metrics": json.loads((run_dir / "metrics.json").read_text())}
    result["last_interval"] = last_interval(run_dir)
    result["wall_s"] = round(time.monotonic() - started, 1)
    wire = run_dir / "hosts" / "wire_bytes.json"
    if wire.exists():
        hosts = json.loads(wire.read_text()).values()
        result["wire_tx_bytes_per_host"] = sum(h["tx_bytes"] for h in hosts) / len(hosts)
    return result


def layout(args: argparse.Namespace) -> dict[str, Place | None]:
    """The places and their roles: loopback, the main cluster (curves, meter against wire), fewer
    hosts (scaling) and slower links."""
    cluster = not args.loopback_only
    return {
        "loopback": Place("loopback", args.hosts),
        "cluster": Place("cluster", args.hosts, args.rate) if cluster else None,
        "scaling": Place("cluster", 2, args.rate) if cluster and args.hosts != 2 else None,
        "slow": Place("cluster", args.hosts, args.slow_rate)
        if cluster and args.slow_rate
        else None,
    }


def last_interval(run_dir: Path) -> dict[str, float]:
    """The DP and MP ratios of the run's last logging interval: compression after warm-up."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    logged = [record for line in lines if "bytes/dp_ratio" in (record := json.loads(line))]
    return {f"{c}_ratio": logged[-1][f"bytes/{c}_ratio"] for c in ("dp", "mp")}


def plan(places: dict[str, Place | None]) -> list[tuple[Place, str, tuple[str, ...]]]:
    """Every (place, label, overrides) the suite runs; the same run under two labels runs once."""
    runs = [
        (place, name, overrides)
        for place in places.values()
        if place is not None
        for name, overrides in METHODS.items()
    ]
    if places["cluster"] is not None:
        for points in curves().values():
            runs += [(places["cluster"], label, overrides) for label, overrides in points.items()]
    return runs


def machine(args: argparse.Namespace) -> dict:
    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "steps": args.steps,
        "seed": args.seed,
        "base_overrides": list(BASE),
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rate", default="1gbit", help="each simulated host's link speed")
    parser.add_argument(
        "--slow-rate", default="100mbit", help="a second, slower link speed ('' to skip)"
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds a run may take")
    parser.add_argument("--resume", action="store_true", help="keep the runs in OUT/results.json")
    parser.add_argument(
        "--loopback-only", action="store_true", help="skip the simulated cluster (no root needed)"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    args.out = args.out.resolve()
    if not args.loopback_only and os.geteuid() != 0:
        raise SystemExit("suite: the simulated cluster needs root; use sudo or --loopback-only")
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if args.resume and results_path.exists() else {}
    runs = results.setdefault("runs", {})
    results["machine"] = machine(args)
    args.out.mkdir(parents=True, exist_ok=True)
    places = layout(args)
    results["layout"] = {role: None if p is None else asdict(p) for role, p in places.items()}
    todo = plan(places)
    for i, (place, label, overrides) in enumerate(todo, 1):
        key = suite_report.run_key(place, overrides)
        if key not in runs:
            print(f"[{i}/{len(todo)}] {place.key}: {label}", flush=True)
            runs[key] = {
                "place": place.key,
                "overrides": list(overrides),
                **run_one(place, overrides, args),
            }
            results_path.write_text(json.dumps(results, indent=1, sort_keys=True))
    print(suite_report.write(results, args.out, METHODS, curves(), REGENERATE))


if __name__ == "__main__":
    main(sys.argv[1:])
