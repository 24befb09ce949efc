"""Which embedding table each categorical feature looks up, and how its bag is pooled.

By default every feature has a table of its own and sums its bag. A team's schema may let
several features share one table (a user id and a friend's id: one vector per user, learned
from both columns) and may average a bag instead of summing it (a genre list whose length
says nothing). Mean pooling is the sum divided by the bag's length, an empty bag pooling to
zero; the division happens after the sum, so a row-sharded table's partial sums, added by the
receiver, are divided once, by the whole bag's length.

Example::

    layout = FeatureTables(table_sizes=(1000, 20), feature_tables=(0, 0, 1), mean=(False,) * 3)
    layout.features_of(0)   # [0, 1]: both features look up table 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

POOLINGS = ("sum", "mean")


@dataclass(frozen=True)
class FeatureTables:
    """``table_sizes[t]``: rows of table ``t``; ``feature_tables[f]``: the table feature ``f``
    looks up; ``mean[f]``: feature ``f``'s bag is averaged rather than summed."""

    table_sizes: tuple[int, ...]
    feature_tables: tuple[int, ...]
    mean: tuple[bool, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.feature_tables):
            raise ValueError(
                f"{len(self.mean)} pooling modes for {len(self.feature_tables)} features"
            )
        used = set(self.feature_tables)
        if used != set(range(len(self.table_sizes))):
            raise ValueError(
                f"features look up tables {sorted(used)}; every one of the "
                f"{len(self.table_sizes)} tables must be looked up, and no other"
            )

    @staticmethod
    def one_per_feature(table_sizes: Sequence[int]) -> FeatureTables:
        """A table of its own for every feature, bags summed."""
        n = len(table_sizes)
        return FeatureTables(tuple(table_sizes), tuple(range(n)), (False,) * n)

    @staticmethod
    def build(
        table_sizes: Sequence[int], feature_tables: Sequence[int], pooling: Sequence[str]
    ) -> FeatureTables:
        """From config lists: empty ``feature_tables`` is a table per feature, empty ``pooling``
        is ``sum`` for every feature."""
        if not feature_tables:
            feature_tables = range(len(table_sizes))
        if not pooling:
            pooling = ["sum"] * len(feature_tables)
        unknown = sorted(set(pooling) - set(POOLINGS))
        if unknown:
            raise ValueError(f"pooling {unknown[0]!r} is unknown; use one of {', '.join(POOLINGS)}")
        return FeatureTables(
            tuple(table_sizes), tuple(feature_tables), tuple(p == "mean" for p in pooling)
        )

    @property
    def num_features(self) -> int:
        return len(self.feature_tables)

    @property
    def feature_rows(self) -> list[int]:
        """Each feature's table's rows: what its ids must lie below."""
        return [self.table_sizes[t] for t in self.feature_tables]

    def features_of(self, table: int) -> list[int]:
        """The features that look up ``table``, ascending."""
        return [f for f, t in enumerate(self.feature_tables) if t == table]

    def pooling(self) -> list[str]:
        return ["mean" if m else "sum" for m in self.mean]

    def is_default(self) -> bool:
        """A table per feature, in order, every bag summed (what needs no record)."""
        return self == FeatureTables.one_per_feature(self.table_sizes)


def mean_scale(offsets: Sequence[Tensor], mean: Sequence[bool]) -> Tensor | None:
    """``[n, features, 1]``: what each feature's summed bag is multiplied by: ``1 / length``
    for a mean-pooled feature (an empty bag sums to 0 anyway), 1 for a summed one; ``None``
    when no feature is mean-pooled."""
    if not any(mean):
        return None
    columns = []
    for offs, is_mean in zip(offsets, mean):
        lengths = offs.diff().to(torch.float32)
        columns.append(1.0 / lengths.clamp(min=1.0) if is_mean else torch.ones_like(lengths))
    return torch.stack(columns, dim=1).unsqueeze(2)
