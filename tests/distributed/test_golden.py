"""Hybrid-parallel training equals single-process training on the same global batches.

The reference is an independent plain loop over ``models.dlrm.DLRM``: no process group, no
sharding, no all-to-all, no DDP.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from sklearn.metrics import roc_auc_score
from torch import nn

from dct.config import (
    DataConfig,
    DCTDPConfig,
    ModelConfig,
    OptimConfig,
    OutputConfig,
    ParallelConfig,
    RunConfig,
    TrainConfig,
    model_parallel_size,
)
from dct.data.synthetic import SyntheticClicks
from dct.parallel.topology import GridShape, Topology
from dct.train.loop import build_optimizer, train
from models.dlrm import DLRM
from tests.distributed.spawn import run_ranks

RTOL = 1e-5
ATOL = 1e-5


# Adagrad divides each entry's step by its own gradient history: with a tiny eps, a gradient that
# cancels to ~1e-9 (its sign set by float summation order) becomes an O(lr) step, so one process
# summing the same batch in two halves already drifts by ~1e-3. A larger eps keeps the comparison
# about parallelism, not about rounding.
ADAGRAD_EPS = 1e-3


def small_config(mp_size: int, optim: str) -> RunConfig:
    return RunConfig(
        seed=3,
        model=ModelConfig(embedding_dim=8, bottom_mlp=[16, 8], top_mlp=[16]),
        data=DataConfig(cardinalities=[50, 400, 30, 1000, 7, 120, 60], eval_size=200),
        parallel=ParallelConfig(mp_size=mp_size),
        optim=OptimConfig(name=optim, adagrad_eps=ADAGRAD_EPS),
        train=TrainConfig(steps=12, batch_size=64, lr=0.3, eval_every=6, log_every=5),
        output=OutputConfig(tensorboard=False, progress_bar=False),
    )


def train_rank(cfg: RunConfig) -> dict:
    shape = GridShape(dist.get_world_size(), cfg.parallel.mp_size, len(cfg.data.cardinalities))
    result = train(cfg, Topology(shape, "cpu"), torch.device("cpu"))
    shard = result.model.shard_tables()
    return {
        "losses": result.losses,
        "auc": result.evaluation.auc,
        "tables": {t: table.weight.detach() for t, table in zip(shard.table_indices, shard.tables)},
    }


def reference_run(cfg: RunConfig) -> dict:
    model = DLRM(
        cfg.data.num_dense,
        cfg.model.bottom_mlp,
        cfg.data.cardinalities,
        cfg.model.top_mlp,
        cfg.seed,
    )
    optimizer = build_optimizer(cfg.optim, cfg.train.lr, model.parameters())
    data, size = SyntheticClicks(cfg.data, cfg.seed), cfg.train.batch_size
    losses = []
    for step in range(cfg.train.steps):
        batch = data.samples("train", step * size, size)
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    eval_batch = data.samples("eval", 0, 256)
    with torch.no_grad():
        prob = torch.sigmoid(model(eval_batch))
    return {
        "losses": losses,
        "auc": roc_auc_score(eval_batch.labels.numpy(), prob.numpy()),
        "tables": {t: table.weight.detach() for t, table in enumerate(model.sparse_arch.tables)},
    }


def assert_same_training(result: dict, reference: dict) -> None:
    torch.testing.assert_close(
        torch.tensor(result["losses"]), torch.tensor(reference["losses"]), rtol=RTOL, atol=0.0
    )
    assert result["auc"] == pytest.approx(reference["auc"], abs=1e-4)


@pytest.mark.parametrize(
    "world_size, mp_size, optim",
    [(1, 1, "sgd"), (2, 2, "sgd"), (4, 2, "sgd"), (4, 4, "sgd"), (4, 2, "adagrad")],
)
def test_hybrid_training_equals_single_process(world_size, mp_size, optim, tmp_path):
    cfg = small_config(mp_size, optim)
    reference = reference_run(cfg)
    ranks = run_ranks(world_size, train_rank, cfg, tmp_dir=tmp_path)

    for result in ranks:
        assert_same_training(result, reference)
        for table, weight in result["tables"].items():
            torch.testing.assert_close(weight, reference["tables"][table], rtol=0.0, atol=ATOL)

    owners = [set(result["tables"]) for result in ranks]
    assert set().union(*owners) == set(range(len(cfg.data.cardinalities)))
    assert all(owners[r] == owners[r % mp_size] for r in range(world_size))


def train_pipeline_rank(cfg: RunConfig) -> dict:
    shape = GridShape(dist.get_world_size(), model_parallel_size(cfg), len(cfg.data.cardinalities))
    result = train(cfg, Topology(shape, "cpu"), torch.device("cpu"))
    states = result.model.dp_states
    return {"losses": result.losses, "auc": result.evaluation.auc, "dct_dp": list(states)}


@pytest.mark.parametrize(
    "replicas, cuts, microbatches, optim, dct_dp",
    [
        (1, ["bottom_mlp.0"], 2, "sgd", False),
        (1, ["bottom_mlp.1", "top_mlp.0"], 4, "sgd", False),
        (1, ["top_mlp.0"], 2, "adagrad", False),
        (2, ["bottom_mlp.1"], 2, "sgd", False),
        (2, ["top_mlp.0"], 2, "adagrad", False),
        (2, ["bottom_mlp.1"], 2, "sgd", True),
    ],
)
def test_pipeline_training_equals_single_process(
    replicas, cuts, microbatches, optim, dct_dp, tmp_path
):
    """Replicas average each stage's gradients through the metered all-reduce hook, or through
    DCT-DP at density 1.0, which sends every nonzero entry exactly."""
    cfg = small_config(1, optim)
    cfg.parallel = ParallelConfig(mp_mode="pipeline", microbatches=microbatches)
    cfg.model.cuts = cuts
    cfg.dct.dp = DCTDPConfig(enabled=dct_dp, density=1.0)
    reference = reference_run(cfg)
    world = replicas * (len(cuts) + 1)
    for result in run_ranks(world, train_pipeline_rank, cfg, tmp_dir=tmp_path):
        assert_same_training(result, reference)
        assert result["dct_dp"] == (["stage"] if dct_dp else [])
