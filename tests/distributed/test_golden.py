"""Hybrid-parallel training equals single-process training on the same global batches.

The reference is an independent plain loop over the single-process model (``models.zoo``:
DLRM unless a test names another, ``tests/distributed/test_golden_models.py``) whose sparse part
is swapped for one written here: tables with dense gradients, each feature's bag pooled by
``nn.functional.embedding_bag`` in its table with its mode (``sum`` or ``mean``), updated by
``torch.optim`` (SGD, Adagrad) or by row-wise Adagrad written out here: no process group, no
sharding, no all-to-all, no DDP, no row gradients.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from sklearn.metrics import roc_auc_score
from torch import nn

from dct.config import (
    DCTDPConfig,
    ModelConfig,
    OptimConfig,
    OutputConfig,
    ParallelConfig,
    RunConfig,
    SyntheticDataConfig,
    TrainConfig,
    model_parallel_size,
)
from dct.data.batch import SparseFeatures
from dct.data.rank_batches import SampleSource
from dct.data.synthetic import SyntheticClicks
from dct.embedding.fused import fbgemm_available
from dct.parallel.topology import GridShape, Topology
from dct.train.loop import train
from dct.train.step_optimizers import dense_optimizer
from models.feature_tables import FeatureTables
from models.recommender import Recommender
from models.zoo import recommender
from tests.distributed.spawn import run_ranks

RTOL = 1e-5
ATOL = 1e-5


# Adagrad divides each entry's step by its own gradient history: with a tiny eps, a gradient that
# cancels to ~1e-9 (its sign set by float summation order) becomes an O(lr) step, so one process
# summing the same batch in two halves already drifts by ~1e-3. A larger eps keeps the comparison
# about parallelism, not about rounding.
ADAGRAD_EPS = 1e-3


def small_config(
    mp_size: int,
    optim: str,
    tables: str | None = None,
    sharding: str = "auto",
    kernel: str = "torch",
    model: str = "dlrm",
) -> RunConfig:
    """``tables``: the tables' optimizer, ``optim`` (the tower's) unless given. ``auto``
    sharding cuts table 3 (1,000 of the 1,667 rows) into row blocks and keeps the rest whole.
    ``model``: ``model.name`` (DLRM-DCNv2 with 2 cross layers of rank 6)."""
    cross = {"cross_layers": 2, "cross_rank": 6} if model == "dlrm_dcn" else {}
    return RunConfig(
        seed=3,
        model=ModelConfig(
            name=model,
            embedding_dim=8,
            bottom_mlp=[16, 8],
            top_mlp=[16],
            table_kernel=kernel,
            **cross,
        ),
        data=SyntheticDataConfig(cardinalities=[50, 400, 30, 1000, 7, 120, 60], eval_size=200),
        parallel=ParallelConfig(mp_size=mp_size, sharding=sharding),
        optim=OptimConfig(name=optim, adagrad_eps=ADAGRAD_EPS, tables=tables or optim),
        train=TrainConfig(steps=12, batch_size=64, lr=0.3, eval_every=6, log_every=5),
        output=OutputConfig(tensorboard=False, progress_bar=False),
    )


def train_rank(cfg: RunConfig) -> dict:
    shape = GridShape(dist.get_world_size(), cfg.parallel.mp_size, len(cfg.data.cardinalities))
    result = train(cfg, Topology(shape, "cpu"), torch.device("cpu"))
    model = result.model
    return {
        "losses": result.losses,
        "auc": result.evaluation.auc,
        "tables": {
            (s.table, s.start, s.stop): weight.clone()
            for s, weight in zip(model.shard.shards, model.shard.weights())
        },
        # Every gradient the tables' parameters hold: none, or FBGEMM's empty placeholder.
        "table_grad_sizes": [
            0 if p.grad is None else p.grad.numel() for p in model.shard.parameters()
        ],
    }


class RowwiseAdagrad:
    """Row-wise Adagrad on dense table gradients: one accumulator per row, mean of the squares."""

    def __init__(self, weights: list[nn.Parameter], lr: float, eps: float) -> None:
        self.weights, self.lr, self.eps = weights, lr, eps
        self.state = [torch.zeros(w.shape[0]) for w in weights]

    @torch.no_grad()
    def step(self) -> None:
        for weight, state in zip(self.weights, self.state):
            state += weight.grad.square().mean(dim=1)
            weight -= self.lr * weight.grad / (state.sqrt() + self.eps).unsqueeze(1)


class ReferenceSparseArch(nn.Module):
    """Copies of ``tables`` (dense gradients); feature ``f`` pools its bag in
    ``tables[feature_tables[f]]`` by ``modes[f]`` (an empty bag pools to zero either way)."""

    def __init__(self, tables: nn.ModuleList, feature_tables: list[int], modes: list[str]) -> None:
        super().__init__()
        self.weights = nn.ParameterList(nn.Parameter(t.weight.detach().clone()) for t in tables)
        self.feature_tables, self.modes = feature_tables, modes

    def forward(self, sparse: SparseFeatures) -> torch.Tensor:
        pooled = [
            nn.functional.embedding_bag(
                ids, self.weights[table], offsets, mode=mode, include_last_offset=True
            )
            for table, mode, ids, offsets in zip(
                self.feature_tables, self.modes, sparse.values, sparse.offsets
            )
        ]
        return torch.stack(pooled, dim=1)


def with_dense_tables(
    model: Recommender, feature_tables: list[int] | None = None, modes: list[str] | None = None
) -> Recommender:
    """``model`` with its sparse part swapped for a ``ReferenceSparseArch`` (default: a table
    per feature, summed)."""
    tables = model.sparse_arch.tables
    feature_tables = list(range(len(tables))) if feature_tables is None else feature_tables
    modes = ["sum"] * len(feature_tables) if modes is None else modes
    model.sparse_arch = ReferenceSparseArch(tables, feature_tables, modes)
    return model


def table_optimizer(cfg: RunConfig, weights: list[nn.Parameter]):
    optim, lr = cfg.optim, cfg.train.lr
    if optim.tables == "sgd":
        return torch.optim.SGD(weights, lr=lr)
    if optim.tables == "adagrad":
        return torch.optim.Adagrad(weights, lr=lr, eps=optim.adagrad_eps)
    return RowwiseAdagrad(weights, lr, optim.adagrad_eps)


def reference_run(
    cfg: RunConfig,
    data: SampleSource | None = None,
    feature_tables: list[int] | None = None,
    modes: list[str] | None = None,
) -> dict:
    """The plain single-process loop on ``data`` (default: the config's synthetic clicks),
    features looking up ``feature_tables`` (default: a table each) pooled by ``modes``
    (default: summed)."""
    model = recommender(
        cfg.model,
        cfg.data.num_dense,
        FeatureTables.build(cfg.data.cardinalities, feature_tables or [], modes or []),
        cfg.seed,
    )
    with_dense_tables(model, feature_tables, modes)
    tower = dense_optimizer(cfg.optim, cfg.train.lr, model.dense_tower.parameters())
    tables = table_optimizer(cfg, list(model.sparse_arch.weights))
    data = SyntheticClicks(cfg.data, cfg.seed) if data is None else data
    size = cfg.train.batch_size
    losses = []
    for step in range(cfg.train.steps):
        batch = data.samples("train", step * size, size)
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch.labels)
        model.zero_grad()
        loss.backward()
        tower.step()
        tables.step()
        losses.append(loss.item())
    # Exactly eval_size rows (200, not a whole number of batches of 64): evaluation scores
    # every row it is given and no more, its padded last batch left out (dct.train.evaluation).
    eval_batch = data.samples("eval", 0, cfg.data.eval_size)
    with torch.no_grad():
        prob = torch.sigmoid(model(eval_batch))
    return {
        "losses": losses,
        "auc": roc_auc_score(eval_batch.labels.numpy(), prob.numpy()),
        "tables": {t: weight.detach() for t, weight in enumerate(model.sparse_arch.weights)},
    }


def assert_same_training(result: dict, reference: dict) -> None:
    torch.testing.assert_close(
        torch.tensor(result["losses"]), torch.tensor(reference["losses"]), rtol=RTOL, atol=0.0
    )
    assert result["auc"] == pytest.approx(reference["auc"], abs=1e-4)


@pytest.mark.parametrize(
    "world_size, mp_size, optim, tables, sharding, kernel",
    [
        (1, 1, "sgd", "sgd", "auto", "torch"),
        (2, 2, "sgd", "rowwise_adagrad", "table", "torch"),
        (2, 2, "sgd", "adagrad", "row", "torch"),
        (2, 2, "adagrad", "rowwise_adagrad", "auto", "torch"),
        (4, 2, "sgd", "sgd", "table", "torch"),
        (4, 2, "sgd", "sgd", "row", "torch"),
        (4, 4, "sgd", "adagrad", "table", "torch"),
        (4, 4, "sgd", "rowwise_adagrad", "row", "torch"),
        (4, 4, "adagrad", "sgd", "auto", "torch"),
        (4, 2, "adagrad", "adagrad", "auto", "torch"),
        (4, 2, "adagrad", "rowwise_adagrad", "auto", "torch"),
        (1, 1, "sgd", "rowwise_adagrad", "auto", "fbgemm"),
        (2, 2, "sgd", "sgd", "auto", "fbgemm"),
        (2, 2, "adagrad", "adagrad", "table", "fbgemm"),
        (4, 4, "sgd", "rowwise_adagrad", "row", "fbgemm"),
    ],
)
def test_hybrid_training_equals_single_process(
    world_size, mp_size, optim, tables, sharding, kernel, tmp_path
):
    """Whole tables, row blocks and plans mixing both, with dct's kernel and FBGEMM's fused
    one; replicated shards (world > mp) average the rows they touched; no table keeps a dense
    gradient."""
    if kernel == "fbgemm" and not fbgemm_available():
        pytest.skip("FBGEMM is not installed: pip install -e '.[fbgemm]'")
    cfg = small_config(mp_size, optim, tables, sharding, kernel)
    reference = reference_run(cfg)
    ranks = run_ranks(world_size, train_rank, cfg, tmp_dir=tmp_path)

    for result in ranks:
        assert_same_training(result, reference)
        assert not any(result["table_grad_sizes"])
        for (table, start, stop), weight in result["tables"].items():
            expected = reference["tables"][table][start:stop]
            torch.testing.assert_close(weight, expected, rtol=0.0, atol=ATOL)

    # Every row of every table is held by exactly one MP rank, the same on every replica.
    shards = [set(result["tables"]) for result in ranks]
    assert all(shards[r] == shards[r % mp_size] for r in range(world_size))
    for table, rows in enumerate(cfg.data.cardinalities):
        blocks = sorted((a, b) for held in shards[:mp_size] for t, a, b in held if t == table)
        edges = [0] + [b for _, b in blocks]
        assert [a for a, _ in blocks] == edges[:-1] and edges[-1] == rows
        cut = sharding == "row" or (sharding == "auto" and rows == 1000)
        assert len(blocks) == (mp_size if cut else 1)


def train_pipeline_rank(cfg: RunConfig) -> dict:
    shape = GridShape(dist.get_world_size(), model_parallel_size(cfg), len(cfg.data.cardinalities))
    result = train(cfg, Topology(shape, "cpu"), torch.device("cpu"))
    states = result.model.dp_states
    return {
        "losses": result.losses,
        "auc": result.evaluation.auc,
        "dct_dp": list(states),
        "holds_tables": bool(result.model.tables),
    }


@pytest.mark.parametrize(
    "replicas, cuts, microbatches, optim, dct_dp",
    [
        (1, ["bottom_mlp.0"], 2, "sgd", False),
        (1, ["bottom_mlp.1", "top_mlp.0"], 4, "sgd", False),
        (1, ["top_mlp.0"], 2, "adagrad", False),
        (2, ["bottom_mlp.1"], 2, "sgd", False),
        (2, ["top_mlp.0"], 2, "rowwise_adagrad", False),
        (2, ["bottom_mlp.1"], 2, "sgd", True),
    ],
)
def test_pipeline_training_equals_single_process(
    replicas, cuts, microbatches, optim, dct_dp, tmp_path
):
    """Replicas average each stage's gradients through the metered all-reduce hook, or through
    DCT-DP at density 1.0, which sends every nonzero entry exactly. ``rowwise_adagrad``: the
    tables' optimizer, the tower's being Adagrad."""
    tower = "adagrad" if optim == "rowwise_adagrad" else optim
    cfg = small_config(1, tower, optim)
    cfg.parallel = ParallelConfig(mp_mode="pipeline", cuts=cuts, microbatches=microbatches)
    cfg.dct.dp = DCTDPConfig(enabled=dct_dp, density=1.0)
    reference = reference_run(cfg)
    world = replicas * (len(cuts) + 1)
    for result in run_ranks(world, train_pipeline_rank, cfg, tmp_dir=tmp_path):
        assert_same_training(result, reference)
        hooks = ["stage", "tables"] if result["holds_tables"] else ["stage"]
        assert result["dct_dp"] == (hooks if dct_dp else [])
