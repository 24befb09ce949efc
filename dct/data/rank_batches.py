"""What each rank reads of a global batch.

Global batch ``i`` of a split is samples ``[i * B, (i + 1) * B)``. Rank ``r`` trains on its own
disjoint slice ``[r * b, (r + 1) * b)`` with ``b = B / world_size``; its tables need the ids of
its whole MP group's slice, ``mp_size * b`` samples starting at the group's first rank. Sample
numbers run on past a split's end; a file source wraps them around to its start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from dct.data.batch import Batch, SparseFeatures
from dct.data.criteo_format import DataError


class SampleSource(Protocol):
    def samples(self, split: str, start: int, count: int) -> Batch: ...


@dataclass(frozen=True)
class RankBatch:
    """``local``: this rank's samples (every feature). ``group_sparse``: the ids of the
    features its tables serve, for its MP group."""

    local: Batch
    group_sparse: SparseFeatures


@dataclass(frozen=True)
class RankReader:
    """Reads this rank's part of every global batch from ``source``: ``features`` are the
    features whose ids its tables pool (in the order they pool them); ``feature_rows`` the
    rows of every feature's table, which those ids are checked against.

    Example::

        reader = RankReader(source, 1024, 4, 2, 1, features=[0, 3], feature_rows=[10, 5, 7, 9])
        batch = reader.read("train", step)
    """

    source: SampleSource
    batch_size: int
    world_size: int
    mp_size: int
    rank: int
    features: Sequence[int]
    feature_rows: Sequence[int]
    device: torch.device = torch.device("cpu")

    @property
    def local_size(self) -> int:
        return self.batch_size // self.world_size

    def sample_numbers(self, batch_index: int) -> torch.Tensor:
        """The numbers of this rank's samples (``read(...).local``) in global batch
        ``batch_index``, as positions in the split before it wraps around: evaluation tells the
        rows of a padded last batch from those past the rows it scores."""
        start = batch_index * self.batch_size + self.rank * self.local_size
        return torch.arange(start, start + self.local_size)

    def read(self, split: str, batch_index: int) -> RankBatch:
        """Raises ``DataError`` naming the feature, the id and the table's rows for an id
        outside its table (negative included): a lookup there would read another row or crash."""
        b = self.local_size
        mp_rank = self.rank % self.mp_size
        group_start = batch_index * self.batch_size + (self.rank - mp_rank) * b
        group = self.source.samples(split, group_start, self.mp_size * b)
        local = group.rows(mp_rank * b, (mp_rank + 1) * b)
        sparse = group.sparse.features(self.features)
        for feature, ids in zip(self.features, sparse.values):
            _check_ids(ids, self.feature_rows[feature], feature, f"{split} batch {batch_index}")
        return RankBatch(local.to(self.device), sparse.to(self.device))


def _check_ids(ids: torch.Tensor, rows: int, feature: int, where: str) -> None:
    """Two reductions over the batch's ids: the check costs nothing next to the lookup."""
    if ids.numel() == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low >= 0 and high < rows:
        return
    bad = low if low < 0 else high
    raise DataError(
        f"{where}: sparse feature {feature} (counted from 0) has id {bad}, outside its table of "
        f"{rows} rows (ids must be in [0, {rows})); make data.cardinalities match the data"
    )
