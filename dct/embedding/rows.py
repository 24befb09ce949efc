"""A table's gradient as the rows a batch touched: unique row ids and their summed gradients."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RowGradient:
    """``values[i]`` is the gradient of row ``rows[i]``; ``rows`` unique and ascending (int64),
    every row not listed has a zero gradient. Its size grows with the rows touched, never with the
    rows the table stores."""

    rows: Tensor
    values: Tensor

    @staticmethod
    def empty(dim: int, like: Tensor) -> RowGradient:
        return RowGradient(
            torch.empty(0, dtype=torch.int64, device=like.device),
            torch.empty(0, dim, dtype=like.dtype, device=like.device),
        )

    def scale(self, factor: float) -> RowGradient:
        return RowGradient(self.rows, self.values * factor)

    def to_dense(self, num_rows: int) -> Tensor:
        """The ``[num_rows, dim]`` gradient (for tests and references; never in training)."""
        dense = self.values.new_zeros(num_rows, self.values.shape[1])
        return dense.index_copy_(0, self.rows, self.values)


def coalesce(ids: Tensor, values: Tensor) -> RowGradient:
    """Sum ``values[j]`` ([n, dim]) over equal ``ids[j]`` ([n]), rows ascending."""
    rows, inverse = torch.unique(ids, sorted=True, return_inverse=True)
    summed = values.new_zeros(rows.numel(), values.shape[1]).index_add_(0, inverse, values)
    return RowGradient(rows, summed)
