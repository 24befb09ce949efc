"""When is DCT compression worth turning on? Step TIME on a simulated cluster, dense against
DCT-DP, the compressed embedding all-to-all (``experiment=a2a_compressed``) and both.

    sudo python benchmarks/cluster_time.py --out /tmp/cluster_time   # about 20 minutes on 2 cores

``launch/sim_cluster.sh`` makes ``--hosts`` hosts (2), one process each, whose links run at each of
``--rates`` (100 Mbit/s and 1 Gbit/s). Variants, each a fresh ``launch/train.py`` job with the same
seed (so the same batches): ``dense`` (every table and the dense tower replicated on every host,
gradients exchanged uncompressed), ``DCT-DP 1%`` and ``0.5%`` (fp16 values), ``a2a_compressed``
(tables sharded over all hosts, ``parallel.mp_size=HOSTS``, the all-to-all de-duplicated and int4;
the tower still data-parallel over every host) and ``both`` (that layout with DCT-DP 1% on the
tower: the tables have no replicas). Rounds alternate: round 1 runs every variant at every rate,
then round 2, ..., so the machine's noise falls on all alike. Each run trains ``--steps`` steps and
evaluates once, at the end; the table reports, per rate and variant, the median over rounds of the
run's median step time (and its min-max), and the medians of the rest. Bytes are per rank and
training step over the run's last logging interval (after DCT-DP's warm-up). Every run's raw values
and the machine go to ``OUT/results.json``, the table also to ``OUT/table.md``.

``--upkeep`` sets ``dct.dp.upkeep`` of the DCT-DP variants; ``--extra`` is appended to every
variant, e.g. for model-size sweeps (``configs/model``, ``configs/data``):

- ``model.embedding_dim=64 model.bottom_mlp=[64,64]``: embedding dim (the bottom MLP ends at it)
- ``model.top_mlp=[512,256]``: the top tower's hidden widths; ``model=dlrm_paper`` its paper size
- ``data.cardinalities=[100000,100000,100000,100000]``: one table per entry, its rows the value
  (``parallel.sharding=auto`` cuts tables into row blocks where there are fewer than hosts)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import suite
from suite_report import per_step

from dct.config.schema import DP_UPKEEPS

ROOT = Path(__file__).resolve().parent.parent
DENSE = "dense"
# Every run: no checkpoints, no resume (a measurement, never an earlier one's continuation),
# nothing written or drawn that a step does not need.
BASE = (
    "train.checkpoint_every=0",
    "train.resume=never",
    "output.progress_bar=false",
    "output.tensorboard=false",
)
# metrics.json's per-hook DCT-DP values (docs/metrics.md), ``dp_<hook>_<stat>``.
HOOK_STATS = {  # the statistic: its column, its format
    "intervals_outside_band": ("outside band", "g"),
    "estimates_per_1k_steps": ("estimates / 1k steps", ".0f"),
    "select_ms_per_step": ("select ms / step", ".2f"),
}
HOOKS = ("tables", "tower", "stage")


@dataclass(frozen=True)
class Run:
    """One training job of the plan: a variant at a link rate in a round (numbered from 1)."""

    round: int
    rate: str
    variant: str
    overrides: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"r{self.round}-{self.rate}-{suite.slug(self.variant)}"


def variants(hosts: int, upkeep: str | None, extra: list[str]) -> dict[str, tuple[str, ...]]:
    """Variant name to its overrides: ``upkeep`` (if given) on every DCT-DP variant, ``extra``
    on all."""
    keep = (f"dct.dp.upkeep={upkeep}",) if upkeep else ()
    sharded = ("experiment=a2a_compressed", f"parallel.mp_size={hosts}")
    named = {
        DENSE: (),
        "DCT-DP 1%": suite.dct_dp(0.01) + keep,
        "DCT-DP 0.5%": suite.dct_dp(0.005) + keep,
        "a2a_compressed": sharded,
        "both": sharded + suite.dct_dp(0.01) + keep,
    }
    return {name: overrides + tuple(extra) for name, overrides in named.items()}


def plan(named: dict[str, tuple[str, ...]], rates: list[str], rounds: int) -> list[Run]:
    """Every run in order: a round runs every variant at every rate before the next begins."""
    return [
        Run(i, rate, name, overrides)
        for i in range(1, rounds + 1)
        for rate in rates
        for name, overrides in named.items()
    ]


def command(run: Run, run_dir: Path, args: argparse.Namespace) -> list[str]:
    """The simulated cluster's command line for ``run``, its run directory ``run_dir``."""
    train = [
        "launch/train.py",
        f"seed={args.seed}",
        f"train.steps={args.steps}",
        f"train.eval_every={args.steps}",  # evaluate once, at the end
        *BASE,
        *run.overrides,
        f"hydra.run.dir={run_dir}",
    ]
    return [
        "bash", "launch/sim_cluster.sh", f"--hosts={args.hosts}", f"--rate={run.rate}",
        f"--timeout={args.timeout}", f"--logs={run_dir}/hosts", "--", *train,
    ]  # fmt: skip


def collect(run_dir: Path) -> dict[str, float]:
    """A finished run's values: ``metrics.json``'s step time, throughput, grid, AUC, log-loss
    and DCT-DP hook statistics; bytes per step from ``metrics.jsonl``'s last logged interval."""
    m = json.loads((run_dir / "metrics.json").read_text())
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    last = [r for line in lines if "bytes/dp_sent_per_step" in (r := json.loads(line))][-1]
    values = {
        "step_ms": 1000 * m["step_time_median_s"],
        "samples_per_s": m["samples_per_sec"],
        "mp_size": m["mp_size"],
        "dp_size": m["dp_size"],
        "auc": m["auc"],
        "logloss": m["logloss"],
        "dp_mean_bytes_per_step": per_step(m, "dp"),  # the whole run, warm-up included
    }
    for channel in ("dp", "mp"):
        for kind in ("sent", "dense"):
            values[f"{channel}_{kind}_per_step"] = last[f"bytes/{channel}_{kind}_per_step"]
    for hook in HOOKS:
        for stat in HOOK_STATS:
            if m.get(f"dp_{hook}_{stat}") is not None:
                values[f"dp_{hook}_{stat}"] = m[f"dp_{hook}_{stat}"]
    return values


def execute(run: Run, args: argparse.Namespace) -> dict:
    """Run ``run`` on the cluster; its record, ``failed`` with the log to read if it did not
    finish with a ``metrics.json``."""
    run_dir = args.out / "runs" / run.key
    shutil.rmtree(run_dir, ignore_errors=True)  # an earlier invocation's metrics are not this run's
    run_dir.mkdir(parents=True)
    log = run_dir / "cluster.log"  # host 0's output and sim_cluster.sh's, which names a failed host
    record = {"round": run.round, "rate": run.rate, "variant": run.variant, "log": str(log)}
    started = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(
                command(run, run_dir, args),
                cwd=ROOT,
                env=dict(os.environ, OMP_NUM_THREADS="1"),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=args.timeout + 60,
            ).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    record["wall_s"] = round(time.monotonic() - started, 1)
    try:
        record["values"] = collect(run_dir) if code == 0 else None
    except (OSError, ValueError, KeyError, IndexError) as error:
        code, record["values"] = f"unreadable metrics ({error!r})", None
    record["failed"] = None if code == 0 else f"exit {code}"
    return record


def summarize(records: list[dict], named: list[str], rates: list[str]) -> list[dict]:
    """One row per rate and variant: medians over its finished rounds (step time also min and
    max), step time over dense's at that rate, and how many of its runs failed (their logs)."""
    rows = []
    for rate in rates:
        dense_ms = None
        for name in named:
            runs = [r for r in records if r["rate"] == rate and r["variant"] == name]
            done = [r["values"] for r in runs if not r["failed"]]
            row = {"rate": rate, "variant": name, "runs": len(runs), "finished": len(done)}
            row["failed_logs"] = [r["log"] for r in runs if r["failed"]]
            for key in dict.fromkeys(k for values in done for k in values):
                row[key] = statistics.median(v[key] for v in done if key in v)
            if done:
                row["step_ms_min"] = min(v["step_ms"] for v in done)
                row["step_ms_max"] = max(v["step_ms"] for v in done)
            if name == DENSE:
                dense_ms = row.get("step_ms")
            if dense_ms and "step_ms" in row:
                row["vs_dense"] = row["step_ms"] / dense_ms
            rows.append(row)
    return rows


def _hooks(row: dict, stat: str) -> str:
    """``tables 0, tower 1``: a DCT-DP statistic per hook the run has; ``-`` for none."""
    spec = HOOK_STATS[stat][1]
    found = [f"{h} {row[f'dp_{h}_{stat}']:{spec}}" for h in HOOKS if f"dp_{h}_{stat}" in row]
    return ", ".join(found) or "-"


def table(rows: list[dict]) -> str:
    """The summary as a markdown table; a cell with a failed run says so."""
    head = ["rate", "variant", "mp x dp", "step ms, median (min-max)", "samples/s"]
    head += ["step vs dense", "DP bytes/step (dense)", "MP bytes/step (dense)"]
    head += [column for column, _ in HOOK_STATS.values()] + ["AUC", "log-loss", "runs"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|---|---|---|" + "---:|" * 5 + "---|" * 3 + "---:|" * 2 + "---|",
    ]
    for row in rows:
        failed = row["runs"] - row["finished"]
        runs = f"{row['finished']}/{row['runs']}" + (f", **{failed} FAILED**" if failed else "")
        cells = [row["rate"], row["variant"]]
        if not row["finished"]:
            cells += ["**FAILED**"] + [""] * (len(head) - 4) + [runs]
        else:
            cells += [
                f"{row['mp_size']:g} x {row['dp_size']:g}",
                f"{row['step_ms']:.1f} ({row['step_ms_min']:.1f}-{row['step_ms_max']:.1f})",
                f"{row['samples_per_s']:,.0f}",
                f"{row['vs_dense']:.2f}" if "vs_dense" in row else "n/a",
                f"{row['dp_sent_per_step']:,.0f} ({row['dp_dense_per_step']:,.0f})",
                f"{row['mp_sent_per_step']:,.0f} ({row['mp_dense_per_step']:,.0f})",
                *(_hooks(row, stat) for stat in HOOK_STATS),
                f"{row['auc']:.4f}",
                f"{row['logloss']:.4f}",
                runs,
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--rates", nargs="+", default=["100mbit", "1gbit"], help="tc rates")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--upkeep", choices=DP_UPKEEPS, help="dct.dp.upkeep; default: config's")
    parser.add_argument("--extra", nargs="+", default=[], metavar="OVERRIDE", help="to every run")
    parser.add_argument("--variants", nargs="+", metavar="NAME", help="a subset, by name")
    parser.add_argument("--timeout", type=int, default=900, help="seconds a run may take")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    args.out = args.out.resolve()
    named = variants(args.hosts, args.upkeep, args.extra)
    if args.variants:
        unknown = sorted(set(args.variants) - set(named))
        if unknown or DENSE not in args.variants:
            sys.exit(f"cluster_time: --variants takes {', '.join(named)}, dense among them")
        named = {name: named[name] for name in named if name in args.variants}
    todo = plan(named, args.rates, args.rounds)
    if args.dry_run:
        for run in todo:
            print(shlex.join(command(run, args.out / "runs" / run.key, args)))
        return 0
    if os.geteuid() != 0:
        sys.exit("cluster_time: the simulated cluster needs root (network namespaces): use sudo")
    args.out.mkdir(parents=True, exist_ok=True)
    machine = suite.machine(args) | {"base_overrides": list(BASE), "load_before": os.getloadavg()}
    made_by = shlex.join(["python", "benchmarks/cluster_time.py", *argv])
    results = {"command": made_by, "machine": machine, "variants": named, "runs": []}
    for i, run in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] round {run.round}, {run.rate}: {run.variant}", flush=True)
        record = execute(run, args)
        if record["failed"]:
            print(
                f"cluster_time: {run.variant} at {run.rate} (round {run.round}) failed "
                f"({record['failed']}): see {record['log']}",
                flush=True,
            )
        results["runs"].append(record)
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
    machine["load_after"] = os.getloadavg()
    results["summary"] = summarize(results["runs"], list(named), args.rates)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    text = (
        f"Made by `{made_by}`: {args.hosts} hosts, {args.steps} steps, {args.rounds} round(s); "
        "step time: median over rounds of each run's median step.\n\n" + table(results["summary"])
    )
    (args.out / "table.md").write_text(text + "\n")
    print("\n" + text)
    return 1 if any(r["failed"] for r in results["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
