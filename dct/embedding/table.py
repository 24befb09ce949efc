"""An embedding table whose backward hands over the rows a batch touched, never a dense gradient.

``nn.EmbeddingBag``'s dense gradient is a table-sized tensor every step, and the optimizer then
sweeps every row: per-step cost grows with the rows the table stores. Here the backward keeps
each lookup's gradient (``[lookups, dim]``) and ``take_row_gradient()`` coalesces them into a
``RowGradient`` of the touched rows, which ``dct.embedding.table_optimizers`` applies to those rows
only. The weight's ``.grad`` stays ``None``: nothing table-sized is allocated after the first
step. Several backwards before one take (pipeline micro-batches) accumulate.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dct.embedding.rows import RowGradient, coalesce


def _pool(weight: Tensor, ids: Tensor, offsets: Tensor) -> Tensor:
    return nn.functional.embedding_bag(ids, weight, offsets, mode="sum", include_last_offset=True)


class _SumPooledLookup(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, weight: Tensor, ids: Tensor, offsets: Tensor, table: SparseTable
    ) -> Tensor:
        ctx.save_for_backward(ids, offsets)
        ctx.table = table
        return _pool(weight, ids, offsets)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, None, None]:
        ids, offsets = ctx.saved_tensors
        bags = torch.repeat_interleave(
            torch.arange(grad.shape[0], device=grad.device), offsets.diff()
        )
        ctx.table.pending.append((ids, grad.index_select(0, bags)))
        return None, None, None, None


class SparseTable(nn.Module):
    """``num_rows x dim`` table, sum pooling over bags given as ``(ids, offsets)`` with
    ``len(offsets) == bags + 1`` (``nn.EmbeddingBag``'s ``include_last_offset=True``).

    Example::

        table = SparseTable(1_000_000, 16)
        table(ids, offsets).sum().backward()
        grad = table.take_row_gradient()   # the touched rows only
    """

    def __init__(self, num_rows: int, dim: int) -> None:
        super().__init__()
        self.num_rows, self.dim = num_rows, dim
        # requires_grad so autograd reaches the lookup's backward, which returns no dense grad
        self.weight = nn.Parameter(torch.empty(num_rows, dim))
        self.pending: list[tuple[Tensor, Tensor]] = []

    def forward(self, ids: Tensor, offsets: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            return _SumPooledLookup.apply(self.weight, ids, offsets, self)
        return _pool(self.weight, ids, offsets)

    def take_row_gradient(self) -> RowGradient:
        """The gradient of every backward since the last take, coalesced; then forgets it."""
        pending, self.pending = self.pending, []
        if not pending:
            return RowGradient.empty(self.dim, self.weight)
        ids, grads = zip(*pending)
        return coalesce(torch.cat(ids), torch.cat(grads))
