"""DLRM (Naumov et al., 2019) as plain single-process PyTorch.

The model is split the way hybrid parallelism needs it: ``SparseArch`` (one
``dct.embedding.table.SparseTable`` per categorical feature, whose gradient is the rows a batch
touched, for ``dct.embedding.table_optimizers.TableOptimizer``) and ``DenseTower`` (bottom MLP,
pairwise dot interaction, top MLP). Sharding the tables and wrapping the tower for data
parallelism happens outside, in ``dct.parallel``; this file knows nothing of processes.

Initialisation depends only on ``seed`` (and, for a table, its index), never on how the model is
split across processes, so a table built alone on one rank equals the same table built here.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from dct.data.batch import Batch, SparseFeatures
from dct.embedding.table import SparseTable
from models.feature_tables import FeatureTables, mean_scale

DENSE_STREAM = 1 << 20


# A table's rows are drawn in chunks this long, each from its own generator.
INIT_CHUNK_ROWS = 1 << 16


def _generator(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + stream)


def _chunk_generator(seed: int, table_index: int, chunk: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, table_index, chunk]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def build_table(
    num_embeddings: int, dim: int, seed: int, table_index: int, rows: range | None = None
) -> SparseTable:
    """Rows ``rows`` (default: all) of table ``table_index`` of a model seeded ``seed``:
    ``init_table_rows``, sum pooling."""
    rows = range(num_embeddings) if rows is None else rows
    table = SparseTable(len(rows), dim)
    init_table_rows(table.weight, num_embeddings, seed, table_index, rows.start)
    return table


@torch.no_grad()
def init_table_rows(
    out: Tensor, num_embeddings: int, seed: int, table_index: int, first_row: int = 0
) -> None:
    """Fill ``out`` (``[n, dim]``) with rows ``first_row : first_row + n`` of table
    ``table_index``: uniform(+-1/sqrt(num_embeddings)).

    Chunks of ``INIT_CHUNK_ROWS`` rows are drawn from generators keyed by (seed, table, chunk),
    so a block of rows built alone equals the same rows of the whole table (row-wise sharding),
    at a transient cost of at most one chunk, whatever ``out`` is (a ``SparseTable``'s weight or
    a view into FBGEMM's storage).
    """
    stop, dim = first_row + out.shape[0], out.shape[1]
    bound = 1.0 / math.sqrt(num_embeddings)
    for chunk in range(first_row // INIT_CHUNK_ROWS, -(-stop // INIT_CHUNK_ROWS)):
        low = chunk * INIT_CHUNK_ROWS
        high = min(low + INIT_CHUNK_ROWS, num_embeddings)
        start, end = max(low, first_row), min(high, stop)
        generator = _chunk_generator(seed, table_index, chunk)
        target = out[start - first_row : end - first_row]
        if (start, end) == (low, high) and target.is_contiguous() and target.device.type == "cpu":
            target.uniform_(-bound, bound, generator=generator)
        else:
            drawn = torch.empty(high - low, dim).uniform_(-bound, bound, generator=generator)
            target.copy_(drawn[start - low : end - low])


def _mlp(widths: Sequence[int], generator: torch.Generator, last_relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        linear = nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            linear.weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
            linear.bias.normal_(0.0, math.sqrt(1.0 / fan_out), generator=generator)
        layers.append(linear)
        if last_relu or i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SparseArch(nn.Module):
    """Pooled embeddings ``[n, num_features, dim]`` of every feature's id bags, each looked up
    in its table and summed or averaged as ``features`` says (``models.feature_tables``)."""

    def __init__(self, features: FeatureTables, dim: int, seed: int) -> None:
        super().__init__()
        self.features = features
        self.tables = nn.ModuleList(
            build_table(rows, dim, seed, i) for i, rows in enumerate(features.table_sizes)
        )

    def forward(self, sparse: SparseFeatures) -> Tensor:
        pooled = torch.stack(
            [
                self.tables[table](values, offsets)
                for table, values, offsets in zip(
                    self.features.feature_tables, sparse.values, sparse.offsets
                )
            ],
            dim=1,
        )
        scale = mean_scale(sparse.offsets, self.features.mean)
        return pooled if scale is None else pooled * scale


class DotInteraction(nn.Module):
    """The bottom MLP's output concatenated with all pairwise dot products of the features."""

    def forward(self, dense: Tensor, pooled: Tensor) -> Tensor:
        features = torch.cat([dense.unsqueeze(1), pooled], dim=1)
        dots = torch.bmm(features, features.transpose(1, 2))
        n = features.shape[1]
        rows, cols = torch.tril_indices(n, n, offset=-1, device=dots.device)
        return torch.cat([dense, dots[:, rows, cols]], dim=1)


class DenseTower(nn.Module):
    """Everything but the tables: bottom MLP, interaction, top MLP down to one logit."""

    def __init__(
        self,
        num_dense: int,
        bottom_mlp: Sequence[int],
        num_features: int,
        top_mlp: Sequence[int],
        seed: int,
    ) -> None:
        super().__init__()
        generator = _generator(seed, DENSE_STREAM)
        dim = bottom_mlp[-1]
        interaction_width = dim + (num_features + 1) * num_features // 2
        self.bottom_mlp = _mlp([num_dense, *bottom_mlp], generator, last_relu=True)
        self.interaction = DotInteraction()
        self.top_mlp = _mlp([interaction_width, *top_mlp, 1], generator, last_relu=False)

    def forward(self, dense: Tensor, pooled: Tensor) -> Tensor:
        """Logits ``[n]`` from dense features ``[n, num_dense]`` and pooled embeddings."""
        interacted = self.interaction(self.bottom_mlp(dense), pooled)
        return self.top_mlp(interacted).squeeze(1)


class DLRM(nn.Module):
    """Single-process DLRM: ``DLRM(...)(batch)`` returns one click logit per sample. A table
    per feature, bags summed, unless ``features`` says otherwise (then ``table_sizes`` must be
    its ``table_sizes``).

    Example::

        model = DLRM(13, [64, 16], [1000] * 26, [64, 32], seed=0)
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch.labels)
    """

    def __init__(
        self,
        num_dense: int,
        bottom_mlp: Sequence[int],
        table_sizes: Sequence[int],
        top_mlp: Sequence[int],
        seed: int,
        features: FeatureTables | None = None,
    ) -> None:
        super().__init__()
        if features is None:
            features = FeatureTables.one_per_feature(table_sizes)
        if list(features.table_sizes) != list(table_sizes):
            raise ValueError(f"table sizes {list(table_sizes)} are not {features.table_sizes}")
        self.sparse_arch = SparseArch(features, bottom_mlp[-1], seed)
        self.dense_tower = DenseTower(num_dense, bottom_mlp, features.num_features, top_mlp, seed)

    def forward(self, batch: Batch) -> Tensor:
        return self.dense_tower(batch.dense, self.sparse_arch(batch.sparse))
