"""The fidelity harness's report: ``OUT/README.md`` and ``OUT/auc_vs_ratio.png`` from its runs.

    python benchmarks/fidelity_report.py docs/fidelity --steps 2000

One section per baseline (a method run with ``baseline`` null: ``dense``, ``paper dense``):
the baseline's plateau check (eval AUC change over the last 20 % of the steps), then per method
paired with it, on the first data seed: mean AUC and log-loss, the paired difference to the
baseline with its 95 % interval (``benchmarks/paired.py``), the byte ratio of the channel it
compresses, the non-inferiority verdict at the margin and, for DCT-DP, how many logging
intervals each hook spent outside its density band. Then the methods that also ran on further
data seeds, pooled over every data seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from paired import PairedDifference, paired_difference

Runs = dict[tuple[int, int], dict]  # (data seed, seed) -> run record


def run_key(method: str, data_seed: int, seed: int, steps: int) -> str:
    return f"{method}|data{data_seed}|seed{seed}|{steps}"


def load_results(path: Path) -> dict[str, dict]:
    """Finished runs by ``run_key``; a torn last line (a killed harness) is ignored."""
    results = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            results[run_key(r["method"], r["data_seed"], r["seed"], r["steps"])] = r
    return results


def by_method(records: list[dict], steps: int) -> dict[str, Runs]:
    runs: dict[str, Runs] = defaultdict(dict)
    for r in records:
        if r["steps"] == steps:
            runs[r["method"]][(r["data_seed"], r["seed"])] = r
    return runs


def paired(runs: Runs, dense: Runs, metric: str, data_seed: int | None) -> PairedDifference | None:
    """Over the (data seed, seed) pairs both have (of ``data_seed`` only, unless ``None``)."""
    keys = sorted(k for k in runs if k in dense and data_seed in (None, k[0]))
    if len(keys) < 2:
        return None
    return paired_difference(
        [runs[k]["metrics"][metric] for k in keys], [dense[k]["metrics"][metric] for k in keys]
    )


def ratio(runs: Runs) -> float:
    return statistics.fmean(r["metrics"][f"{r['channel']}_ratio"] for r in runs.values())


def interval(diff: PairedDifference | None) -> str:
    if diff is None:
        return "n/a"
    return f"{diff.mean:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]"


def band(runs: Runs) -> str:
    """DCT-DP hooks' logging intervals outside the density band, summed over the runs."""
    cells = []
    for hook in ("tables", "tower", "stage"):
        counts = [r["metrics"].get(f"dp_{hook}_intervals_outside_band") for r in runs.values()]
        if any(c is not None for c in counts):
            cells.append(f"{hook} {sum(c or 0 for c in counts)}")
    return ", ".join(cells) or ""


def main_table(runs: dict[str, Runs], baseline: str, data_seed: int, margin: float) -> str:
    """``runs`` are the baseline's and those of the methods paired with it."""
    dense = runs[baseline]
    lines = [
        f"| method | runs | AUC | log-loss | ΔAUC vs {baseline} [95 % CI] | Δlog-loss [95 % CI] "
        f"| byte ratio | verdict at {margin:g} | DCT-DP intervals outside band |",
        "|---|---:|---:|---:|---|---|---:|---|---|",
    ]

    def order(method: str) -> tuple:  # the baseline first, then by channel and byte ratio
        mine = {k: r for k, r in runs[method].items() if k[0] == data_seed}
        channel = next(iter(mine.values()))["channel"] if mine else ""
        return (method != baseline, channel, ratio(mine) if mine else 0.0)

    for method in sorted(runs, key=order):
        mine = {k: r for k, r in runs[method].items() if k[0] == data_seed}
        auc = paired(mine, dense, "auc", data_seed)
        logloss = paired(mine, dense, "logloss", data_seed)
        verdict = "baseline" if method == baseline else (auc.verdict(margin) if auc else "n/a")
        lines.append(
            f"| {method} | {len(mine)} "
            f"| {statistics.fmean(r['metrics']['auc'] for r in mine.values()):.4f} "
            f"| {statistics.fmean(r['metrics']['logloss'] for r in mine.values()):.4f} "
            f"| {interval(auc)} | {interval(logloss)} | {ratio(mine):.1f} | {verdict} "
            f"| {band(mine)} |"
        )
    return "\n".join(lines)


def seed_cell(runs: Runs, dense: Runs, data_seed: int) -> str:
    """One data seed's paired ΔAUC: its interval, or the single difference of a single pair."""
    diff = paired(runs, dense, "auc", data_seed)
    if diff is not None:
        return interval(diff)
    [key] = [k for k in runs if k in dense and k[0] == data_seed] or [None]
    if key is None:
        return "n/a"
    return f"{runs[key]['metrics']['auc'] - dense[key]['metrics']['auc']:+.4f} (1 pair)"


def pooled_table(runs: dict[str, Runs], baseline: str, data_seeds: list[int], margin: float) -> str:
    dense = runs[baseline]
    header = " | ".join(f"ΔAUC, data seed {d}" for d in data_seeds)
    lines = [
        f"| method | pairs | ΔAUC pooled [95 % CI] | verdict at {margin:g} | {header} |",
        "|---|---:|---|---|" + "---|" * len(data_seeds),
    ]
    for method, mine in runs.items():
        if method == baseline or not {k[0] for k in mine} - {data_seeds[0]}:
            continue
        pooled = paired(mine, dense, "auc", None)
        per_seed = " | ".join(seed_cell(mine, dense, d) for d in data_seeds)
        lines.append(
            f"| {method} | {pooled.n if pooled else 0} | {interval(pooled)} "
            f"| {pooled.verdict(margin) if pooled else 'n/a'} | {per_seed} |"
        )
    return "\n".join(lines)


def plateau(baseline: str, dense: Runs, steps: int) -> str:
    """Mean over the baseline's runs of eval AUC at 80 % of the steps and at the end."""
    at_80, at_end = [], []
    for run in dense.values():
        history = dict(run["eval_auc_history"])
        mark = max(s for s in history if s <= 0.8 * steps)
        at_80.append(history[mark])
        at_end.append(history[steps])
    change = statistics.fmean(e - a for e, a in zip(at_end, at_80))
    verdict = "plateaued" if abs(change) < 0.001 else "NOT plateaued"
    return (
        f"{baseline} eval AUC, mean over {len(at_end)} runs: {statistics.fmean(at_80):.4f} at 80 % "
        f"of the steps, {statistics.fmean(at_end):.4f} at step {steps}: a change of "
        f"{change:+.4f} over the last 20 % ({verdict}: the criterion is < 0.001)."
    )


def plot(runs: dict[str, Runs], baselines: dict[str, str | None], path: Path) -> None:
    """Every method's paired ΔAUC to its baseline, on the baseline's first data seed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    for method, all_runs in runs.items():
        if (baselines[method] or method) not in runs:
            continue
        dense = runs[baselines[method] or method]
        data_seed = min(k[0] for k in dense)
        mine = {k: r for k, r in all_runs.items() if k[0] == data_seed}
        diff = paired(mine, dense, "auc", data_seed)
        if diff is None:
            continue
        x = ratio(mine)
        axes.errorbar(
            x, diff.mean, yerr=[[diff.mean - diff.low], [diff.high - diff.mean]], fmt="o", capsize=4
        )
        axes.annotate(method, (x, diff.mean), textcoords="offset points", xytext=(5, 5), fontsize=7)
    axes.set_xscale("log")
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.axhline(-0.001, color="red", linewidth=0.8, linestyle="--", label="margin -0.001")
    axes.set_xlabel("bytes ratio on the compressed channel (dense / sent)")
    axes.set_ylabel("paired ΔAUC vs baseline (95 % CI)")
    axes.set_title("Accuracy against compression")
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def section(runs: dict[str, Runs], baseline: str, steps: int, margin: float) -> list[str]:
    """The report's part on one baseline; ``runs`` are its and its methods'."""
    record = next(iter(runs[baseline].values()))
    data_seeds = sorted({k[0] for k in runs[baseline]})
    first = data_seeds[0]
    command = " ".join(["launch/train.py", *record["overrides"]])
    text = [
        f"## Against {baseline}",
        "",
        f"{baseline} is `{command}` on {record['processes']} processes. Each row's runs share "
        f"data seed {first} and training seeds with {baseline}; ΔAUC is method minus "
        f"{baseline}, paired by seed.",
        "",
        plateau(baseline, {k: r for k, r in runs[baseline].items() if k[0] == first}, steps),
        "",
        main_table(runs, baseline, first, margin),
        "",
    ]
    if len(data_seeds) > 1:
        text += [
            f"Also run on further data seeds, over data seeds {data_seeds} (pairs pooled):",
            "",
            pooled_table(runs, baseline, data_seeds, margin),
            "",
        ]
    return text


def batch_size(records: list[dict]) -> int:
    """The runs' global batch: an override's, else the default config's."""
    for override in records[0]["overrides"] if records else []:
        if override.startswith("train.batch_size="):
            return int(override.split("=", 1)[1])
    return DEFAULT_BATCH


DEFAULT_BATCH = 1024  # configs/train/default.yaml


def write(out: Path, steps: int, margin: float, command: str) -> None:
    """Write ``out/README.md`` and ``out/auc_vs_ratio.png`` from ``out/results.jsonl``."""
    records = list(load_results(out / "results.jsonl").values())
    runs = by_method(records, steps)
    baselines = {r["method"]: r["baseline"] for r in records}
    text = [
        "# Fidelity: accuracy of each method against its baseline, paired over seeds",
        "",
        f"Made by `{command}` (`python benchmarks/fidelity_report.py {out} --steps {steps}` "
        f"redraws it from `results.jsonl`). {steps} steps of {batch_size(records):,} samples "
        "per run.",
        "",
    ]
    for baseline in (m for m in runs if baselines[m] is None):
        mine = {m: r for m, r in runs.items() if baseline in (m, baselines[m])}
        text += section(mine, baseline, steps, margin)
    text += ["![AUC against compression](auc_vs_ratio.png)", ""]
    (out / "README.md").write_text("\n".join(text))
    plot(runs, baselines, out / "auc_vs_ratio.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--margin", type=float, default=0.001)
    parser.add_argument("--command", default=None, help="the harness command that made the runs")
    args = parser.parse_args()
    command = args.command or f"python benchmarks/fidelity.py --out {args.out}"
    write(args.out, args.steps, args.margin, command)


if __name__ == "__main__":
    main()
