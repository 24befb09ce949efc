"""A model's sparse part: its embedding tables, initialised by seed alone, and their pooling.

``SparseArch`` holds one ``dct.embedding.table.SparseTable`` per table (whose gradient is the
rows a batch touched, for ``dct.embedding.table_optimizers.TableOptimizer``) and pools each
feature's id bags in the table ``models.feature_tables`` says, summed or averaged. Every model
in ``models/`` shares it; embedding mode builds the same rows shard by shard
(``dct.parallel.table_shard``).

Initialisation depends only on ``seed`` and a table's index, never on how the tables are split
across processes, so a table (or a block of its rows) built alone on one rank equals the same
table built here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from dct.data.batch import SparseFeatures
from dct.embedding.table import SparseTable
from models.feature_tables import FeatureTables, mean_scale

# A table's rows are drawn in chunks this long, each from its own generator.
INIT_CHUNK_ROWS = 1 << 16


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
