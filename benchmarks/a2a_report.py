"""The embedding all-to-all's frontier: MP byte ratio against paired AUC difference, every setting.

    python benchmarks/a2a_report.py docs/a2a_compressed

Reads the fidelity harness's runs of the ``A2A ...`` methods (``benchmarks/fidelity.py``) on
the synthetic data (``OUT/synthetic``, 5,000 steps) and on the real Criteo rows
(``OUT/criteo_head10k``, one pass), and writes ``OUT/frontier.md``: per setting, the MP ratio,
the paired ΔAUC against the same layout's dense exchange with its 95 % interval and verdict at
the margin, and where the bytes go (activations, gradients, index, per training step on the
synthetic data), then the most compressed setting non-inferior on both datasets.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from fidelity_report import Runs, by_method, interval, load_results, paired, ratio

BASELINE = "A2A dense"
DATASETS = {"synthetic": 5000, "criteo_head10k": 33}


def load(out: Path) -> dict[str, dict[str, Runs]]:
    """Per dataset, the runs of every method."""
    return {
        name: by_method(list(load_results(out / name / "results.jsonl").values()), steps)
        for name, steps in DATASETS.items()
    }


def verdict_of(runs: dict[str, Runs], method: str, margin: float) -> tuple[str, str, float]:
    """ΔAUC interval, verdict and mean MP ratio of ``method`` against the baseline."""
    if method not in runs or BASELINE not in runs:
        return "not run", "", float("nan")
    diff = paired(runs[method], runs[BASELINE], "auc", None)
    if method == BASELINE:
        return "—", "baseline", ratio(runs[method])
    return interval(diff), diff.verdict(margin) if diff else "n/a", ratio(runs[method])


def parts(runs: Runs) -> str:
    """Mean bytes per training step by part, and the share de-duplication left out."""
    m = [r["metrics"] for r in runs.values()]
    cells = [
        f"{statistics.fmean(x[f'mp_{p}_bytes_per_step'] for x in m):,.0f}"
        for p in ("forward", "backward", "index")
    ]
    share = [x["mp_dedup_share"] for x in m if x["mp_dedup_share"] is not None]
    cells.append(f"{statistics.fmean(share):.1%}" if share else "")
    return " | ".join(cells)


def frontier(data: dict[str, dict[str, Runs]], margin: float) -> tuple[str, str | None]:
    synthetic = data["synthetic"]
    methods = sorted(
        (m for m in synthetic if m.startswith("A2A")), key=lambda m: ratio(synthetic[m])
    )
    lines = [
        "| setting | MP ratio | ΔAUC [95 % CI] | verdict | MP ratio, Criteo | ΔAUC, Criteo "
        "[95 % CI] | verdict, Criteo | activations B/step | gradients B/step | index B/step "
        "| rows left out by dedup |",
        "|---|---:|---|---|---:|---|---|---:|---:|---:|---:|",
    ]
    best = None
    for method in methods:
        syn = verdict_of(synthetic, method, margin)
        real = verdict_of(data["criteo_head10k"], method, margin)
        lines.append(
            f"| {method} | {syn[2]:.2f} | {syn[0]} | {syn[1]} | {real[2]:.2f} | {real[0]} "
            f"| {real[1]} | {parts(synthetic[method])} |"
        )
        if syn[1] == real[1] == "non-inferior":
            best = method
    return "\n".join(lines), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--margin", type=float, default=0.001)
    args = parser.parse_args()
    table, best = frontier(load(args.out), args.margin)
    text = [
        "# The embedding all-to-all: MP ratio against paired ΔAUC",
        "",
        f"Made by `python benchmarks/a2a_report.py {args.out}` from the runs of "
        f"`{args.out}/synthetic` and `{args.out}/criteo_head10k` (commands in "
        "docs/a2a_compressed.md). ΔAUC is the setting minus `A2A dense` (the same 2-rank "
        "layout, fp32 exchange), paired by training seed; verdicts at a margin of "
        f"{args.margin:g}. "
        "Bytes by part are means per training step on the synthetic data (evaluation's forward "
        "transfers included).",
        "",
        table,
        "",
        f"Most compressed setting non-inferior on both: {best or 'none'}.",
    ]
    (args.out / "frontier.md").write_text("\n".join(text) + "\n")
    print(f"wrote {args.out / 'frontier.md'}")


if __name__ == "__main__":
    main()
