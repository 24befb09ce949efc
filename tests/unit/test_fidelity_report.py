"""The fidelity harness's report on runs whose numbers are fixed here: known intervals, verdicts.

The per-seed AUCs are those of ``tests/unit/test_paired.py`` (interval worked out by hand there);
the report must pair runs by seed (not by order in the file), each method with its own baseline,
keep only the requested horizon, pool the headline method over data seeds, and judge each
baseline's plateau.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fidelity_report  # noqa: E402

DENSE = {1: 0.780, 2: 0.781, 3: 0.779, 4: 0.782, 5: 0.780}
DCT = {1: 0.781, 2: 0.780, 3: 0.781, 4: 0.782, 5: 0.783}  # +0.0010 [-0.0010, +0.0030]
LOSSY = {seed: auc - 0.005 for seed, auc in DCT.items()}  # -0.0040 [-0.0060, -0.0020]
STEPS = 100


def record(
    method: str,
    seed: int,
    auc: float,
    data_seed: int = 0,
    steps: int = STEPS,
    baseline: str | None = "dense",
) -> dict:
    return {
        "method": method,
        "baseline": None if method == baseline else baseline,
        "processes": 2,
        "overrides": [] if method == "dense" else [f"{method}=true"],
        "data_seed": data_seed,
        "seed": seed,
        "steps": steps,
        "channel": "dp",
        "wall_s": 1.0,
        "eval_auc_history": [[80, auc - 0.0005], [steps, auc]],
        "metrics": {
            "auc": auc,
            "logloss": 1.0 - auc,
            "dp_ratio": 1.0 if method == "dense" else 100.0,
            "dp_tower_intervals_outside_band": None if method == "dense" else 0,
        },
    }


@pytest.fixture
def report(tmp_path: Path) -> str:
    records = [record("DCT-DP 1%", s, a) for s, a in reversed(DCT.items())]
    records += [record("dense", s, a) for s, a in DENSE.items()]
    records += [record("lossy", s, a) for s, a in LOSSY.items()]
    records += [record("dense", 1, 0.5, steps=STEPS + 1)]  # another horizon: ignored
    for seed, auc in LOSSY.items():  # a second baseline: "lossy" is a method's "dense" there
        records += [record("paper dense", seed, auc, baseline="paper dense")]
        records += [record("paper DCT", seed, DCT[seed], baseline="paper dense")]
    for data_seed, seeds in ((1, (1, 2)), (2, (1,))):  # two more worlds: +0.002 on each seed
        for seed in seeds:
            records += [record("dense", seed, 0.70 + seed / 1000, data_seed)]
            records += [record("DCT-DP 1%", seed, 0.702 + seed / 1000, data_seed)]
    lines = [json.dumps(r) for r in records] + ['{"method": "torn']
    (tmp_path / "results.jsonl").write_text("\n".join(lines))
    fidelity_report.write(tmp_path, STEPS, 0.001, "python benchmarks/fidelity.py --test")
    assert (tmp_path / "auc_vs_ratio.png").stat().st_size > 0
    return (tmp_path / "README.md").read_text()


def row(report: str, method: str) -> str:
    """The method's row in its baseline's table."""
    return next(line for line in report.splitlines() if line.startswith(f"| {method} |"))


def test_paired_interval_and_verdicts(report):
    assert "| +0.0010 [-0.0010, +0.0030] |" in row(report, "DCT-DP 1%")
    assert "| non-inferior |" in row(report, "DCT-DP 1%")
    assert "| -0.0040 [-0.0060, -0.0020] |" in row(report, "lossy")
    assert "| inferior |" in row(report, "lossy")
    assert "| 5 | 0.7804 |" in row(report, "dense")  # 5 runs of this horizon, mean AUC


def test_headline_methods_are_pooled_over_data_seeds(report):
    pooled = [line for line in report.splitlines() if line.startswith("| DCT-DP 1% | 8 |")]
    assert len(pooled) == 1  # 5 pairs on data seed 0, 2 on data seed 1, 1 on data seed 2
    assert pooled[0].endswith("| +0.0020 [+0.0020, +0.0020] | +0.0020 (1 pair) |")


def test_plateau_is_judged_on_the_last_fifth(report):
    assert "a change of +0.0005 over the last 20 % (plateaued" in report
    assert "`python benchmarks/fidelity.py --test`" in report
    assert "Each row's runs share data seed 0 and training seeds with dense;" in report


def test_each_method_is_paired_with_its_own_baseline(report):
    dense, paper = report.split("## Against dense")[1].split("## Against paper dense")
    assert "| paper DCT |" not in dense and "| DCT-DP 1% |" not in paper
    assert "| +0.0050 [+0.0050, +0.0050] |" in row(paper, "paper DCT")  # DCT - LOSSY, per seed
    assert "| baseline |" in row(paper, "paper dense")
    assert "paper dense is `launch/train.py paper dense=true` on 2 processes" in paper
    assert paper.index("| paper dense |") < paper.index("| paper DCT |")  # the baseline first
