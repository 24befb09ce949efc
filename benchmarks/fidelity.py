"""The fidelity harness: does a compressor change accuracy, told apart from seed noise?

    pip install -e '.[bench]'
    python benchmarks/fidelity.py --out docs/fidelity        # hours on 2 cores; resumable
    python benchmarks/fidelity.py --quick                    # a few minutes: the smoke version
    python benchmarks/fidelity.py --out docs/fidelity/paper --steps 600 --data-seeds 0 \
        --methods "paper dense" "paper 2 workers 90%" ...    # the paper's DCT-MP table

Every method is ``launch/train.py`` with its overrides under torchrun. Runs are paired: each
method trains on the *same* data seed (``data.seed``, the synthetic world) with the same
training seeds (``seed``, the model's initialisation) as its baseline, one setting changed. On
the default synthetic DLRM the baseline is ``dense``: dense training is the same whether the
model is split into pipeline stages or its tables sharded (the golden tests), so one baseline
serves every layout. The DCT paper's DLRM table (``paper ...`` methods, ``model=dlrm_paper``)
has its own, ``paper dense``. The default model's dense and headline settings also run on
further data seeds, so a verdict does not rest on one synthetic world.

Each finished run is appended to ``OUT/results.jsonl`` at once; a rerun skips what is there,
so an interrupted harness continues where it stopped. Each run's own directory (its
``metrics.json`` and ``metrics.jsonl``) goes under ``--runs-dir``. At the end
``benchmarks/fidelity_report.py`` writes ``OUT/README.md`` (paired differences to the baseline
with 95 % intervals, byte ratios, non-inferiority verdicts at ``--margin``, the dense run's plateau
check, DCT-DP's density band) and ``OUT/auc_vs_ratio.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import fidelity_report
from fidelity_report import load_results, run_key

ROOT = Path(__file__).resolve().parent.parent
TRAIN = str(ROOT / "launch" / "train.py")


@dataclass(frozen=True)
class Method:
    """Overrides on top of the default config, the channel whose byte ratio it is judged by,
    the method it is paired with (``None``: it is a baseline) and its number of processes."""

    overrides: tuple[str, ...] = ()
    channel: str = "dp"
    baseline: str | None = "dense"
    processes: int = 2  # the default model's methods all on 2, so their step times compare


def dct_dp(density: float) -> Method:
    return Method(
        ("dct.dp.enabled=true", f"dct.dp.density={density:g}", "dct.dp.value_dtype=float16")
    )


def dct_mp(density: float, *layout: str) -> Method:
    enabled = ("dct.mp.enabled=true", f"dct.mp.density={density:g}", "dct.mp.value_dtype=float16")
    return Method((*layout, *enabled), channel="mp")


# A 2-stage pipeline of the default DLRM cut after the bottom MLP's first layer (64 wide, after
# its ReLU): the middle of the bottom MLP, where the DCT paper's 2-worker split cuts its model.
PIPELINE = ("parallel.mp_mode=pipeline", "parallel.cuts=[bottom_mlp.0]")
# The DCT paper's DLRM table: its model cut after the bottom MLP's second layer (2 workers),
# also after the top MLP's (3 workers), and 2 data-parallel replicas of the 2-worker pipeline
# (DP+MP; replicas of a pipeline need a multiple of its stages, so 4 workers, not the paper's 3).
PAPER = ("model=dlrm_paper", "parallel.mp_mode=pipeline")
TWO, THREE = "parallel.cuts=[bottom_mlp.1]", "parallel.cuts=[bottom_mlp.1,top_mlp.1]"


def a2a(*settings: str) -> Method:
    """A codec at the embedding all-to-all of 2 model-parallel ranks (``dct.mp``), paired with
    the same layout's dense exchange: one setting changed."""
    return Method(("parallel.mp_size=2", *settings), channel="mp", baseline="A2A dense")


DEDUP = "dct.mp.dedup=true"


def paper(density: float, cuts: str, processes: int) -> Method:
    return replace(dct_mp(density, *PAPER, cuts), baseline="paper dense", processes=processes)


METHODS = {
    "dense": Method(baseline=None),
    "fp16 hook": Method(("dp_hook.name=fp16",)),
    "PowerSGD rank 1": Method(("dp_hook.name=powersgd", "dp_hook.powersgd_rank=1")),
    "DCT-DP 1%": dct_dp(0.01),
    "DCT-DP 0.5%": dct_dp(0.005),
    # With 1% and 0.5%, the DCT paper's DP sparsity sweep: 75, 90, 95, 98, 99, 99.5 %.
    **{f"DCT-DP {100 * d:g}%": dct_dp(d) for d in (0.25, 0.1, 0.05, 0.02)},
    "DCT-MP pipeline 5%": dct_mp(0.05, *PIPELINE),
    "DCT-MP pipeline 2%": dct_mp(0.02, *PIPELINE),
    "DCT-MP all-to-all 5%": dct_mp(0.05, "parallel.mp_size=2"),
    # The embedding all-to-all's codecs (docs/a2a_compressed.md), with and without dedup.
    "A2A dense": Method(("parallel.mp_size=2",), channel="mp", baseline=None),
    "A2A DCT-MP top-k 5%": replace(dct_mp(0.05, "parallel.mp_size=2"), baseline="A2A dense"),
    **{f"A2A {c}": a2a(f"dct.mp.codec={c}") for c in ("fp16", "bf16", "int8", "int4")},
    "A2A dedup": a2a(DEDUP),
    "A2A dedup int8": a2a(DEDUP, "dct.mp.codec=int8"),
    "A2A dedup int4, int8 gradients": a2a(DEDUP, "dct.mp.codec=int4", "dct.mp.grad_codec=int8"),
    "A2A dedup int4": a2a(DEDUP, "dct.mp.codec=int4"),
    "paper dense": Method((*PAPER, TWO), baseline=None),
    **{f"paper 2 workers {100 - 100 * d:g}%": paper(d, TWO, 2) for d in (0.1, 0.05, 0.02)},
    **{f"paper 3 workers {100 - 100 * d:g}%": paper(d, THREE, 3) for d in (0.1, 0.05)},
    **{f"paper DP+MP 2x2 workers {100 - 100 * d:g}%": paper(d, TWO, 4) for d in (0.1, 0.05)},
}
HEADLINE = ("dense", "DCT-DP 1%", "DCT-DP 0.5%", "DCT-MP pipeline 5%")
FULL = {"steps": 5000, "seeds": [1, 2, 3, 4, 5], "data_seeds": [0, 1, 2], "extra_seeds": [1]}
QUICK = {"steps": 60, "seeds": [1, 2], "data_seeds": [0], "extra_seeds": []}


def train(
    method: str, data_seed: int, seed: int, steps: int, runs_dir: Path, extra: list[str]
) -> dict:
    """One run under torchrun, with ``extra`` overrides after the method's; its metrics, eval
    history and wall time."""
    spec = replace(METHODS[method], overrides=(*METHODS[method].overrides, *extra))
    slug = re.sub(r"[^0-9A-Za-z]+", "_", method).strip("_")  # Hydra's override grammar
    if extra:  # another dataset's runs must not land in the synthetic ones' directories
        slug += "_" + hashlib.sha1(" ".join(extra).encode()).hexdigest()[:8]
    run_dir = runs_dir / f"{slug}_data{data_seed}_seed{seed}_steps{steps}"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={spec.processes}", TRAIN, *spec.overrides,
        f"seed={seed}", f"data.seed={data_seed}", f"train.steps={steps}",
        f"train.eval_every={max(steps // 10, 1)}", "output.progress_bar=false",
        "output.tensorboard=false", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    if done.returncode != 0:
        sys.exit(f"{method}, data seed {data_seed}, seed {seed} failed:\n{done.stderr[-3000:]}")
    history = [
        (row["step"], row["eval/auc"])
        for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
        if "eval/auc" in row
    ]
    return {
        "method": method,
        "data_seed": data_seed,
        "seed": seed,
        "steps": steps,
        "channel": spec.channel,
        "baseline": spec.baseline,
        "processes": spec.processes,
        "overrides": list(spec.overrides),
        "wall_s": time.monotonic() - started,
        "eval_auc_history": history,
        "metrics": json.loads((run_dir / "metrics.json").read_text()),
    }


def plan(methods: list[str], settings: dict) -> list[tuple[str, int, int]]:
    """(method, data seed, seed) of every run: all methods on the first data seed with every
    seed; the headline methods also on the other data seeds with ``extra_seeds``."""
    first, *others = settings["data_seeds"]
    runs = [(m, first, s) for s in settings["seeds"] for m in methods]
    runs += [
        (m, d, s) for d in others for s in settings["extra_seeds"] for m in methods if m in HEADLINE
    ]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    parser.add_argument(
        "--quick", action="store_true", help="dense and DCT-DP 1%%, 2 seeds, 60 steps"
    )
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=None)
    parser.add_argument("--steps", type=int, default=None, help="training steps of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds")
    parser.add_argument("--data-seeds", type=int, nargs="+", default=None)
    parser.add_argument(
        "--extra-seeds",
        type=int,
        nargs="+",
        default=None,
        help="training seeds of the headline methods on the further data seeds",
    )
    parser.add_argument("--margin", type=float, default=0.001, help="non-inferiority margin, AUC")
    parser.add_argument(
        "--overrides",
        nargs="+",
        default=[],
        help="Hydra overrides for every run, e.g. data=criteo data.path=DIR (real data)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=ROOT / "outputs" / "fidelity_runs",
        help="where each run's own directory goes",
    )
    args = parser.parse_args()  # fmt: skip
    settings = dict(QUICK if args.quick else FULL)
    for key in settings:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    methods = args.methods or (["dense", "DCT-DP 1%"] if args.quick else list(METHODS))
    missing = {METHODS[m].baseline for m in methods} - {None, *methods}
    if missing:
        parser.error(f"--methods must include {', '.join(sorted(missing))}: a baseline of theirs")
    if len(settings["seeds"]) < 2:
        parser.error("give at least 2 --seeds: a paired interval needs 2 pairs")
    out = args.out or ROOT / "outputs" / ("fidelity_quick" if args.quick else "fidelity")
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = load_results(results_path)
    todo = [r for r in plan(methods, settings) if run_key(*r, settings["steps"]) not in done]
    print(f"{len(todo)} run(s) to go, results in {results_path}", flush=True)
    for i, (method, data_seed, seed) in enumerate(todo, 1):
        record = train(method, data_seed, seed, settings["steps"], args.runs_dir, args.overrides)
        with results_path.open("a") as sink:
            sink.write(json.dumps(record) + "\n")
        print(
            f"[{i}/{len(todo)}] {method}, data seed {data_seed}, seed {seed}: "
            f"auc {record['metrics']['auc']:.4f} ({record['wall_s']:.0f} s)",
            flush=True,
        )
    command = shlex.join(["python", "benchmarks/fidelity.py", *sys.argv[1:]])
    fidelity_report.write(out, settings["steps"], args.margin, command)
    print(f"report: {out / 'README.md'}")


if __name__ == "__main__":
    main()
