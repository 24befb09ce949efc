"""Hybrid-parallel training on a ``dct-preprocess`` directory equals single-process training on it.

``tests.distributed.test_golden``'s comparison on a team's own data: multi-valued features with
empty and long bags (jagged lookups sharded across MP ranks), single-valued ones, dense features
or none, and a split shorter than the run, so that global batches wrap around its end. The
reference is the same plain loop over ``models.dlrm.DLRM`` with ``nn.EmbeddingBag`` tables,
reading the same rows straight from ``TabularClicks``. On 4 ranks the same world also trains
with DCT-DP at density 1.0 (every nonzero gradient entry sent) or with the de-duplicated
all-to-all (lossless), which must land on the same reference.

``SHARED``: features sharing tables (a multi-valued and a single-valued feature looking up one
table; two multi-valued ones another) and mean-pooled bags, empty ones among them; the
reference pools each feature in its table by ``nn.functional.embedding_bag`` with its own
mode. Through both table kernels (FBGEMM's looks up several features in one table), row
blocks (a mean's partial sums added before the division), de-duplication and the pipeline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from dct.config import (
    DCTConfig,
    DCTDPConfig,
    DCTMPConfig,
    ParallelConfig,
    RunConfig,
    TabularDataConfig,
)
from dct.data.sources import with_data_shape
from dct.data.tabular import TabularClicks
from dct.data.tabular_format import TableInfo
from dct.embedding.fused import fbgemm_available
from dct.parallel.topology import Topology, grid_shape
from dct.train.loop import train
from dct.train.summary import summary_metrics
from tests.distributed.spawn import run_ranks
from tests.distributed.test_golden import (
    ATOL,
    assert_same_training,
    reference_run,
    small_config,
    train_pipeline_rank,
)
from tests.unit.test_tabular_reader import TABLES, make_tabular

# 12 steps of 32 rows read the 150 training rows about 2.5 times, a wrap inside a batch.
TRAIN_ROWS, EVAL_ROWS, BATCH = 150, 70, 32
# Lower than test_golden's 0.3: on these random rows 0.3 sends the loss past 100 within a few
# steps, and a run that unstable magnifies float summation order (relative 1e-4 by step 12).
LR = 0.05
# What a world trains besides the plain run: each changes the wire, never the result.
# Five features, three tables: genres (mean) and tags (sum) share a table of 30 rows; user_id
# (sum) and liked (a bag of users, mean) one of 500; city has its own.
SHARED = [
    TableInfo("genres", 30, multi_valued=True, pooling="mean"),
    TableInfo("city", 7, multi_valued=False),
    TableInfo("user_id", 500, multi_valued=False),
    TableInfo("tags", 30, multi_valued=True, table="genres"),
    TableInfo("liked", 500, multi_valued=True, table="user_id", pooling="mean"),
]
SHARED_TABLES, SHARED_MODES = [0, 1, 2, 0, 2], ["mean", "sum", "sum", "sum", "mean"]
LAYOUTS = {"own": (TABLES, None, None), "shared": (SHARED, SHARED_TABLES, SHARED_MODES)}
VARIANTS = {
    "plain": DCTConfig(),
    "dct_dp": DCTConfig(dp=DCTDPConfig(enabled=True, density=1.0)),
    "dedup": DCTConfig(mp=DCTMPConfig(dedup=True)),
}


def on_tabular(cfg: RunConfig, path: Path) -> RunConfig:
    """``cfg`` trained on the directory ``path`` in batches of ``BATCH`` at ``LR``, shaped by
    its manifest, every eval row scored, every train row trained on (no validation split:
    ``tests.distributed.test_early_stopping`` has one)."""
    cfg = dataclasses.replace(
        cfg,
        data=TabularDataConfig(path=str(path), eval_size=EVAL_ROWS, valid_fraction=0.0),
        train=dataclasses.replace(cfg.train, batch_size=BATCH, lr=LR),
    )
    return with_data_shape(cfg)


def tabular_config(
    path, mp_size: int, optim: str, tables: str, sharding: str, kernel: str = "torch"
) -> RunConfig:
    """``test_golden``'s run on the directory ``path``, shaped by its manifest."""
    return on_tabular(small_config(mp_size, optim, tables, sharding, kernel), path)


def train_variants(cfgs: dict[str, RunConfig]) -> dict[str, dict]:
    """Each config trained on this rank, in one world (starting one costs seconds): losses,
    AUC, the table blocks held, and the metrics that show what DCT-DP and de-duplication did."""
    results = {}
    for name, cfg in cfgs.items():
        topology = Topology(grid_shape(cfg, dist.get_world_size()), "cpu")
        result = train(cfg, topology, torch.device("cpu"))
        metrics = summary_metrics(result, cfg, topology)
        results[name] = {
            "losses": result.losses,
            "auc": result.evaluation.auc,
            "tables": {
                (s.table, s.start, s.stop): w.clone() for s, w in result.model.table_blocks()
            },
            "dp_tables_density": metrics["dp_tables_achieved_density"],
            "dp_tower_density": metrics["dp_tower_achieved_density"],
            "dedup_share": metrics["mp_dedup_share"],
        }
    return results


@pytest.mark.parametrize(
    "world_size, mp_size, num_dense, optim, tables, sharding, variants, layout, kernel",
    [
        (2, 2, 3, "sgd", "rowwise_adagrad", "row", ["plain"], "own", "torch"),
        (2, 2, 0, "adagrad", "adagrad", "table", ["plain"], "own", "torch"),
        (4, 2, 3, "sgd", "rowwise_adagrad", "row", ["plain", "dct_dp"], "own", "torch"),
        (4, 4, 3, "adagrad", "adagrad", "table", ["plain", "dedup"], "own", "torch"),
        (2, 2, 3, "sgd", "sgd", "row", ["plain", "dedup"], "shared", "torch"),
        (2, 2, 3, "adagrad", "rowwise_adagrad", "table", ["plain", "dedup"], "shared", "fbgemm"),
        (2, 2, 0, "sgd", "adagrad", "row", ["plain"], "shared", "fbgemm"),
        (4, 2, 3, "sgd", "rowwise_adagrad", "table", ["plain", "dct_dp"], "shared", "torch"),
    ],
)
def test_hybrid_training_on_tabular_data_equals_single_process(
    world_size, mp_size, num_dense, optim, tables, sharding, variants, layout, kernel, tmp_path
):
    """2 ranks, 2-way model parallel: row blocks of every table (each rank looks up part of
    every bag), or whole tables; with no dense feature the bottom MLP sees zero columns. 4 ranks:
    2 replicas of 2 MP ranks holding row blocks of every table, plainly and with DCT-DP on the
    table replicas and the tower; 4 MP ranks holding a whole table each (each multi-valued
    feature's bags looked up on one rank for all 4), plainly and de-duplicated. ``shared``: the
    same with shared tables and mean pooling."""
    if kernel == "fbgemm" and not fbgemm_available():
        pytest.skip("FBGEMM is not installed: pip install -e '.[fbgemm]'")
    infos, feature_tables, modes = LAYOUTS[layout]
    data = tmp_path / "data"
    make_tabular(data, TRAIN_ROWS, EVAL_ROWS, num_dense, infos)
    cfg = tabular_config(data, mp_size, optim, tables, sharding, kernel)
    # All 70 eval rows, though not a whole number of batches of 32: the padded last batch's
    # padding is left out of the metrics, so nothing is cut to whole batches (64) any more.
    assert cfg.data.eval_size == EVAL_ROWS and cfg.data.num_dense == num_dense
    assert cfg.data.cardinalities == ([30, 7, 500] if layout == "shared" else [30, 7, 500, 60])
    reference = reference_run(cfg, TabularClicks(cfg.data.path), feature_tables, modes)
    cfgs = {name: dataclasses.replace(cfg, dct=VARIANTS[name]) for name in variants}
    ranks = run_ranks(world_size, train_variants, cfgs, tmp_dir=tmp_path)
    for name in variants:
        for result in (rank[name] for rank in ranks):
            assert_same_training(result, reference)
            for (table, start, stop), weight in result["tables"].items():
                expected = reference["tables"][table][start:stop]
                torch.testing.assert_close(weight, expected, rtol=0.0, atol=ATOL)
            # The variant really ran (its metrics are None when off): DCT-DP on the table
            # replicas and on the tower (density 1.0 sends every nonzero entry, so the share
            # sent is below 1 where gradients are zero), de-duplication on bags pooled alike.
            ran = {
                "dct_dp": (result["dp_tables_density"], result["dp_tower_density"]),
                "dedup": (result["dedup_share"],),
            }
            for variant, values in ran.items():
                for value in values:
                    assert (value is not None) == (variant == name), variant
                    assert value is None or 0 < value <= 1, variant
    # Every row of every table is held by exactly one MP rank, the same on every replica.
    shards = [set(result["plain"]["tables"]) for result in ranks]
    assert all(shards[r] == shards[r % mp_size] for r in range(world_size))
    for table, rows in enumerate(cfg.data.cardinalities):
        blocks = sorted((a, b) for held in shards[:mp_size] for t, a, b in held if t == table)
        edges = [0] + [b for _, b in blocks]
        assert [a for a, _ in blocks] == edges[:-1] and edges[-1] == rows
        assert len(blocks) == (mp_size if sharding == "row" else 1)


@pytest.mark.parametrize("cuts", [["bottom_mlp.0"], ["top_mlp.0"]])
def test_pipeline_training_with_shared_tables_equals_single_process(cuts, tmp_path):
    """Cut below the tables (the second stage holds them) or above them (the first does): the
    stage holding the sparse part pools shared tables and means as the reference does."""
    data = tmp_path / "data"
    make_tabular(data, TRAIN_ROWS, EVAL_ROWS, 3, SHARED)
    cfg = tabular_config(data, 1, "sgd", "rowwise_adagrad", "auto")
    cfg = dataclasses.replace(
        cfg, parallel=ParallelConfig(mp_mode="pipeline", cuts=cuts, microbatches=2)
    )
    reference = reference_run(cfg, TabularClicks(cfg.data.path), SHARED_TABLES, SHARED_MODES)
    for result in run_ranks(2, train_pipeline_rank, cfg, tmp_dir=tmp_path):
        assert_same_training(result, reference)
