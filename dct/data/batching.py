"""What each rank reads of a global batch.

Global batch ``i`` of a split is samples ``[i * B, (i + 1) * B)``. Rank ``r`` trains on its own
disjoint slice ``[r * b, (r + 1) * b)`` with ``b = B / world_size``; its tables need the ids of
its whole MP group's slice, ``mp_size * b`` samples starting at the group's first rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from dct.data.batch import Batch, SparseFeatures


class SampleSource(Protocol):
    def samples(self, split: str, start: int, count: int) -> Batch: ...


@dataclass(frozen=True)
class RankBatch:
    """``local``: this rank's samples. ``group_sparse``: its tables' ids for its MP group."""

    local: Batch
    group_sparse: SparseFeatures


@dataclass(frozen=True)
class RankReader:
    """Reads this rank's part of every global batch from ``source``.

    Example::

        reader = RankReader(source, 1024, world_size=4, mp_size=2, rank=1, tables=[0, 3])
        batch = reader.read("train", step)
    """

    source: SampleSource
    batch_size: int
    world_size: int
    mp_size: int
    rank: int
    tables: Sequence[int]
    device: torch.device = torch.device("cpu")

    @property
    def local_size(self) -> int:
        return self.batch_size // self.world_size

    def read(self, split: str, batch_index: int) -> RankBatch:
        b = self.local_size
        mp_rank = self.rank % self.mp_size
        group_start = batch_index * self.batch_size + (self.rank - mp_rank) * b
        group = self.source.samples(split, group_start, self.mp_size * b)
        local = group.rows(mp_rank * b, (mp_rank + 1) * b)
        return RankBatch(local.to(self.device), group.sparse.tables(self.tables).to(self.device))
