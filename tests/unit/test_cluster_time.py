"""``benchmarks/cluster_time.py`` without a cluster: the plan's order, each variant's command line,
and the summary of fabricated per-run results (medians over rounds, ratio to dense, failures)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import cluster_time  # noqa: E402

DCT_DP_1 = ("dct.dp.enabled=true", "dct.dp.density=0.01", "dct.dp.value_dtype=float16")
SHARDED = ("experiment=a2a_compressed", "parallel.mp_size=2")


def test_rounds_alternate_every_variant_at_every_rate() -> None:
    named = cluster_time.variants(2, None, [])
    runs = cluster_time.plan(named, ["100mbit", "1gbit"], rounds=3)
    assert len(runs) == 3 * 2 * len(named)
    per_round = 2 * len(named)
    for i, run in enumerate(runs):
        assert run.round == 1 + i // per_round  # a round ends before the next begins
    first = {(r.rate, r.variant) for r in runs[:per_round]}
    assert first == {(rate, name) for rate in ("100mbit", "1gbit") for name in named}
    assert len({r.key for r in runs}) == len(runs)  # one run directory each


def test_each_variant_gets_its_overrides() -> None:
    named = cluster_time.variants(2, None, [])
    assert list(named) == ["dense", "DCT-DP 1%", "DCT-DP 0.5%", "a2a_compressed", "both"]
    assert named["dense"] == ()
    assert set(DCT_DP_1) <= set(named["DCT-DP 1%"])
    assert "dct.dp.density=0.005" in named["DCT-DP 0.5%"]
    assert named["a2a_compressed"] == SHARDED
    assert set(SHARDED + DCT_DP_1) <= set(named["both"])
    assert not any("upkeep" in o for overrides in named.values() for o in overrides)


def test_upkeep_goes_to_dct_dp_variants_and_extra_to_all() -> None:
    named = cluster_time.variants(4, "track", ["model.embedding_dim=64"])
    dct_dp = ("DCT-DP 1%", "DCT-DP 0.5%", "both")
    for name, overrides in named.items():
        assert overrides[-1] == "model.embedding_dim=64"
        assert ("dct.dp.upkeep=track" in overrides) == (name in dct_dp)
    assert "parallel.mp_size=4" in named["a2a_compressed"]  # tables sharded over every host


def test_command_runs_the_variant_on_the_simulated_cluster(tmp_path: Path) -> None:
    args = cluster_time.parse(["--out", str(tmp_path), "--steps", "50"])
    run = cluster_time.Run(2, "100mbit", "both", cluster_time.variants(2, None, [])["both"])
    cmd = cluster_time.command(run, tmp_path / "run", args)
    split = cmd.index("--")
    assert cmd[:2] == ["bash", "launch/sim_cluster.sh"]
    assert {"--hosts=2", "--rate=100mbit"} <= set(cmd[:split])
    train = cmd[split + 1 :]
    assert train[0] == "launch/train.py"
    for override in (
        "train.steps=50",
        "train.eval_every=50",
        "train.resume=never",
        "output.progress_bar=false",
        *SHARDED,
        *DCT_DP_1,
    ):
        assert override in train
    assert train[-1] == f"hydra.run.dir={tmp_path / 'run'}"


def record(round: int, variant: str, step_ms: float | None, rate: str = "1gbit") -> dict:
    """A run's record as ``execute`` makes it; ``step_ms=None`` for a failed run."""
    values = None
    if step_ms is not None:
        values = {"step_ms": step_ms, "samples_per_s": 1e6 / step_ms, "auc": 0.7, "mp_size": 1}
        if variant != "dense":
            values["dp_tower_intervals_outside_band"] = round - 1
    return {
        "round": round,
        "rate": rate,
        "variant": variant,
        "log": f"/logs/{variant}-{round}",
        "failed": None if step_ms is not None else "exit 1",
        "values": values,
    }


def test_summary_medians_ratios_and_failures() -> None:
    records = [
        record(1, "dense", 10.0),
        record(1, "DCT-DP 1%", 30.0),
        record(1, "both", None),
        record(2, "dense", 14.0),
        record(2, "DCT-DP 1%", 5.0),
        record(2, "both", None),
        record(3, "dense", 12.0),
        record(3, "DCT-DP 1%", 6.0),
        record(3, "both", None),
        record(1, "dense", 100.0, rate="100mbit"),
        record(1, "DCT-DP 1%", None, rate="100mbit"),
    ]
    rows = cluster_time.summarize(records, ["dense", "DCT-DP 1%", "both"], ["1gbit", "100mbit"])
    by = {(r["rate"], r["variant"]): r for r in rows}
    dense, dp = by["1gbit", "dense"], by["1gbit", "DCT-DP 1%"]
    assert (dense["step_ms"], dense["step_ms_min"], dense["step_ms_max"]) == (12.0, 10.0, 14.0)
    assert (dp["step_ms"], dp["step_ms_min"], dp["step_ms_max"]) == (6.0, 5.0, 30.0)
    assert dp["vs_dense"] == 0.5 and dense["vs_dense"] == 1.0
    assert dp["dp_tower_intervals_outside_band"] == 1
    assert (dp["runs"], dp["finished"], dp["failed_logs"]) == (3, 3, [])
    both = by["1gbit", "both"]
    assert (both["runs"], both["finished"]) == (3, 0) and "step_ms" not in both
    assert both["failed_logs"] == ["/logs/both-1", "/logs/both-2", "/logs/both-3"]
    slow = by["100mbit", "DCT-DP 1%"]
    assert (slow["runs"], slow["finished"]) == (1, 0)
    assert by["100mbit", "both"]["runs"] == 0  # never run: no row looks measured


def test_table_marks_failed_cells() -> None:
    ok = record(1, "dense", 10.0)
    ok["values"] |= {"dp_size": 2, "logloss": 0.5}
    ok["values"] |= {f"{c}_{k}_per_step": 1.0 for c in ("dp", "mp") for k in ("sent", "dense")}
    rows = cluster_time.summarize(
        [ok, record(1, "both", None), record(2, "dense", None)], ["dense", "both"], ["1gbit"]
    )
    lines = cluster_time.table(rows).splitlines()
    assert len({line.count("|") for line in lines}) == 1  # every row has every column
    dense_line, both_line = lines[2], lines[3]
    assert "10.0 (10.0-10.0)" in dense_line and "1/2, **1 FAILED**" in dense_line
    assert "**FAILED**" in both_line and "0/1" in both_line
