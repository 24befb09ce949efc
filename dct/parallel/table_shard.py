"""The embedding rows one MP rank holds and how it pools them (``dct.parallel.hybrid``).

A rank holds *shards* (whole tables or row blocks, ``dct.parallel.sharding``) and pools, for
every feature that looks up a shard's table (``models.feature_tables``), the bags of its MP
group's samples: one *slot* per shard and feature. A row block pools only the ids in its rows,
its part of each bag's sum, which the receiver adds to the other blocks' parts.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from dct.data.batch import SparseFeatures
from dct.embedding.fused import FusedTables
from dct.parallel.sharding import Shard
from models.feature_tables import FeatureTables
from models.sparse_arch import build_table, init_table_rows


class TableShard(nn.Module):
    """The shards one MP rank holds (whole tables or row blocks) and the features that look
    them up: one *slot* per shard and feature of its table (``models.feature_tables``; a shared
    table has several), pooled side by side, ``[n, len(slots) * dim]``, sums (a mean-pooled
    feature is divided by the receiver, which knows the whole bag). A row block pools only the
    ids in its rows: its part of the bag's sum, which the receiver adds to the other blocks'.

    ``fused`` (a table optimizer's name, learning rate and eps) puts the shards in FBGEMM's
    kernel with that optimizer applied in the backward pass (``dct.embedding.fused``); else each
    shard is a ``SparseTable`` whose row gradients the caller applies.
    """

    def __init__(
        self,
        shards: Sequence[Shard],
        features: FeatureTables,
        dim: int,
        seed: int,
        device: torch.device,
        fused: tuple[str, float, float] | None = None,
    ) -> None:
        super().__init__()
        self.shards = list(shards)
        self.dim = dim
        self.slot_shards = [
            i for i, s in enumerate(self.shards) for _ in features.features_of(s.table)
        ]
        self.slot_features = slot_features(self.shards, features)

        def init(i: int, weights: Tensor) -> None:
            s = self.shards[i]
            init_table_rows(weights, s.table_rows, seed, s.table, s.start)

        self.tables = nn.ModuleList()
        self.fused: FusedTables | None = None
        if fused is None:
            for s in self.shards:
                self.tables.append(build_table(s.table_rows, dim, seed, s.table, s.rows).to(device))
        else:
            shapes = [(len(s.rows), dim) for s in self.shards]
            self.fused = FusedTables(shapes, init, *fused, device=device, lookups=self.slot_shards)

    def forward(self, sparse: SparseFeatures) -> Tensor:
        return self.pool(self.restrict(sparse))

    def restrict(self, sparse: SparseFeatures) -> SparseFeatures:
        """Each slot's bags (``sparse`` holds ``slot_features``), a row block's restricted to
        its rows (numbered from its start)."""
        values, offsets = list(sparse.values), list(sparse.offsets)
        for i, shard in enumerate(self.slot_shards):
            if not self.shards[shard].whole:
                values[i], offsets[i] = _in_block(values[i], offsets[i], self.shards[shard])
        return SparseFeatures(tuple(values), tuple(offsets))

    def pool(self, restricted: SparseFeatures) -> Tensor:
        """The bags of ``restrict``'s output pooled, ``[bags, len(slots) * dim]``: a shard's
        slots in one lookup, so its gradient is one set of rows."""
        if self.fused is not None:
            return self.fused(restricted)
        pooled, first = [], 0
        for i, table in enumerate(self.tables):
            count = self.slot_shards.count(i)
            slots = range(first, first + count)
            first += count
            if count == 1:
                pooled.append(table(restricted.values[slots[0]], restricted.offsets[slots[0]]))
                continue
            values, offsets = restricted.features(slots).concatenated()
            n = restricted.num_samples
            pooled.append(table(values, offsets).view(count, n, self.dim).transpose(0, 1))
        return torch.cat([p.reshape(p.shape[0], -1) for p in pooled], dim=1)

    def weights(self) -> list[Tensor]:
        """Each shard's weights, in ``shards`` order."""
        if self.fused is not None:
            return self.fused.weights()
        return [table.weight.detach() for table in self.tables]


def slot_features(shards: Sequence[Shard], features: FeatureTables) -> list[int]:
    """The feature of each slot of ``shards`` (every feature of each shard's table, in order)."""
    return [f for s in shards for f in features.features_of(s.table)]


def shard_name(shard: Shard) -> str:
    """``tables.T`` for a whole table, ``tables.T.rowsSTART`` for a row block."""
    return f"tables.{shard.table}" + ("" if shard.whole else f".rows{shard.start}")


def _in_block(ids: Tensor, offsets: Tensor, shard: Shard) -> tuple[Tensor, Tensor]:
    """The bags restricted to the ids in ``shard``'s rows, renumbered from its first row."""
    keep = (ids >= shard.start) & (ids < shard.stop)
    num_bags = offsets.numel() - 1
    bags = torch.repeat_interleave(torch.arange(num_bags, device=ids.device), offsets.diff())
    counts = torch.bincount(bags[keep], minlength=num_bags)
    return ids[keep] - shard.start, torch.cat([offsets[:1] * 0, counts.cumsum(0)])
