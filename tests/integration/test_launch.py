"""The real entry point under real ``torchrun``: outputs, their schema, and user mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dct.config import DEFAULT_CARDINALITIES
from dct.parallel.sharding import plan_sharding
from tests.time_limit import scaled

REPO = Path(__file__).resolve().parents[2]
TRAIN = str(REPO / "launch" / "train.py")
SMALL = [
    "train.steps=12",
    "train.batch_size=128",
    "train.eval_every=6",
    "train.log_every=4",
    "data.eval_size=512",
    "output.progress_bar=false",
]
METRIC_KEYS = {
    "auc",
    "logloss",
    "accuracy",
    "ne",
    "calibration",
    "bayes_auc",
    "best_step",
    "valid_logloss",
    "stopped_early",
    "samples_per_sec",
    "step_time_median_s",
    "steps",
    "dp_bytes_sent",
    "dp_bytes_dense",
    "mp_bytes_sent",
    "mp_bytes_dense",
    "dp_ratio",
    "mp_ratio",
    "dp_tables_bytes_sent",
    "dp_tables_bytes_dense",
    "dp_tables_ratio",
    "dp_tower_bytes_sent",
    "dp_tower_bytes_dense",
    "dp_tower_ratio",
    "read_time_median_s",
    "state_bytes",
    "peak_rss_bytes",
    "rss_over_state",
}


def launch(args: list[str], nproc: int | None, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    prefix = [sys.executable]
    if nproc is not None:
        prefix += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run(
        [*prefix, TRAIN, *args],
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        env=env,
        cwd=REPO,
    )


def test_two_process_run_writes_every_output(tmp_path):
    done = launch([*SMALL, "parallel.mp_size=2", f"hydra.run.dir={tmp_path}"], nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["steps"] == 12 and metrics["world_size"] == 2
    assert metrics["mp_bytes_sent"] == metrics["mp_bytes_dense"] > 0
    assert metrics["dp_bytes_sent"] == metrics["dp_bytes_dense"] > 0
    assert metrics["mp_ratio"] == metrics["dp_ratio"] == 1.0
    assert 0.5 < metrics["auc"] < metrics["bayes_auc"]
    # 13 tables of the default 94,296 rows x (16 fp32 + a row-wise accumulator) at most, a
    # tower, Adagrad's state for it; the process holds all that and the interpreter.
    assert 0 < metrics["state_bytes"] < 94_296 * 68 + 200_000
    assert metrics["peak_rss_bytes"] > metrics["state_bytes"]
    assert metrics["rss_over_state"] > 1
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "train/loss" in line] == [4, 8, 12]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert "bayes auc" in done.stderr + done.stdout
    assert "Warning" not in done.stderr, "every warning reaches every rank's console"


def test_dct_dp_run_reports_its_compression(tmp_path):
    dct_dp = ["dct.dp.enabled=true", "dct.dp.density=0.01", "dct.dp.value_dtype=float16"]
    done = launch([*SMALL, *dct_dp, f"hydra.run.dir={tmp_path}"], nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 < metrics["dp_bytes_sent"] < metrics["dp_bytes_dense"]
    assert metrics["dp_ratio"] == metrics["dp_bytes_dense"] / metrics["dp_bytes_sent"]
    assert 0 < metrics["dp_achieved_density"] <= 0.015
    assert metrics["dp_threshold_estimates"] >= 1
    logged = {}
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        logged.update(json.loads(line))
    # At 64 samples a rank a table touches a few dozen rows, and every layer sends at least one
    # entry a step: the tables' density sits a little above the band's top.
    for name, most in (("tables", 0.02), ("tower", 0.015)):
        assert 0 < logged[f"dct_dp/{name}/achieved_density"] <= most
        assert logged[f"dct_dp/{name}/ratio"] > 1
    assert logged["dct_dp_threshold/tables/tables.0"] > 0
    assert "Warning" not in done.stderr


def test_dct_mp_run_reports_its_compression(tmp_path):
    dct_mp = ["dct.mp.enabled=true", "dct.mp.density=0.05", "dct.mp.value_dtype=float16"]
    done = launch([*SMALL, "parallel.mp_size=2", *dct_mp, f"hydra.run.dir={tmp_path}"], nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # Per sample, rank 0 sends its own tables' 16 fp32 values each (64 bytes dense) and returns
    # the gradients of rank 1's tables (64 bytes each). DCT-MP sends one fp16 value and its uint8
    # position per table (3 bytes) and one fp16 gradient per table back (2 bytes). Evaluation
    # has no backward pass, so the run's total ratio lies between 64 / 3 and the training ratio.
    own, other = (len(shards) for shards in plan_sharding(DEFAULT_CARDINALITIES, 2, 1).shards)
    training_ratio = 64 * (own + other) / (3 * own + 2 * other)
    assert metrics["mp_ratio"] == metrics["mp_bytes_dense"] / metrics["mp_bytes_sent"]
    assert 64 / 3 < metrics["mp_ratio"] < training_ratio
    assert metrics["mp_kept_fraction"] == 1 / 16
    assert metrics["dp_achieved_density"] is None
    logged = {}
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        logged.update(json.loads(line))
    assert logged["dct_mp/kept_fraction"] == 1 / 16
    assert logged["bytes/mp_ratio"] == pytest.approx(training_ratio)
    assert "dct-mp on rank 0: kept 0.0625" in done.stderr + done.stdout


def test_pipeline_run_reports_dct_mp_at_its_cut(tmp_path):
    pipeline = [
        "parallel.mp_mode=pipeline",
        "parallel.cuts=[bottom_mlp.0]",
        "parallel.microbatches=4",
    ]
    dct_mp = ["dct.mp.enabled=true", "dct.mp.density=0.25", "dct.mp.value_dtype=float16"]
    done = launch([*SMALL, *pipeline, *dct_mp, f"hydra.run.dir={tmp_path}"], nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # The cut is the bottom MLP's 64-wide first layer: 16 fp16 values and uint8 positions a
    # sample forward (48 bytes against 256), 16 fp16 gradients back (32 bytes against 256).
    # Evaluation sends forward only. Both ranks are averaged: one sends forward, one back.
    train_sent, train_dense = 12 * 128 * (48 + 32), 12 * 128 * (256 + 256)
    eval_sent, eval_dense = 512 * 48, 512 * 256
    assert metrics["mp_bytes_sent"] == (train_sent + 2 * eval_sent) // 2
    assert metrics["mp_bytes_dense"] == (train_dense + 2 * eval_dense) // 2
    assert metrics["mp_kept_fraction"] == 0.25
    assert 0.5 < metrics["auc"] < metrics["bayes_auc"]


def test_plain_python_trains_as_one_process_and_says_a_gradient_hook_does_nothing(tmp_path):
    done = launch([*SMALL, "dp_hook.name=fp16", f"hydra.run.dir={tmp_path}"], nproc=None)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dp_hook.name=fp16 has no effect" in done.stdout + done.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 1
    assert metrics["mp_bytes_sent"] == metrics["dp_bytes_sent"] == 0


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.batch_size=101", "train.batch_size=101 must be a positive multiple of the world"),
        ("parallel.mp_size=3", "parallel.mp_size=3 does not divide the world size 2"),
        ("optim=adam", "Could not find 'optim/adam'"),
        ("train.stpes=5", "Key 'stpes' not in 'TrainConfig'"),
        ("dct.dp.density=0", "dct.dp.density=0.0 must be in (0, 1]"),
        ("dct.mp.granularity=row", "dct.mp.granularity='row': use sample"),
        ("model.table_kernel=fbgemm", "model.table_kernel=fbgemm updates tables inside backward"),
        (
            "parallel.mp_size=2 parallel.memory_budget_gb=0.0001",
            "table 14 (14992 rows, 0.001 GiB with its optimizer state) fits no rank within "
            "parallel.memory_budget_gb=0.0001 across 2 MP rank(s)",
        ),
        (
            "parallel.mp_mode=pipeline parallel.cuts=[top_mlp.5]",
            "parallel.cuts=['top_mlp.5']: unknown cut(s) ['top_mlp.5']: this model can be cut at",
        ),
    ],
)
def test_user_mistakes_end_with_one_clear_line(override, message, tmp_path):
    done = launch([*SMALL, *override.split(), f"hydra.run.dir={tmp_path}"], nproc=2)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert message in output
    own_lines = [
        line for line in output.splitlines() if 'File "' in line and "launch/train" in line
    ]
    assert not own_lines, "a user mistake must not print a traceback of our code"
