"""Table optimizers that update only the rows a step touched.

- ``sgd``: ``w[r] -= lr * g[r]``.
- ``adagrad``: one accumulator per entry, ``s[r] += g[r]^2``, ``w[r] -= lr * g[r] / (sqrt(s[r])
  + eps)``: exactly ``torch.optim.Adagrad`` on the dense gradient, whose update of a row with a
  zero gradient is zero.
- ``rowwise_adagrad``: one accumulator per row, ``s[r] += mean(g[r]^2)``, the same step with
  ``s[r]`` shared by the row's entries: the DLRM and TorchRec default for tables (FBGEMM's
  ``EXACT_ROWWISE_ADAGRAD``), 1/dim of ``adagrad``'s state.

The time per step grows with the rows touched. State is a tensor per table (``adagrad``:
``[rows, dim]``, ``rowwise_adagrad``: ``[rows]``), allocated once.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from dct.config import TABLE_OPTIMIZERS
from dct.embedding.rows import RowGradient
from dct.embedding.table import SparseTable


def bytes_per_row(name: str, dim: int, element_size: int = 4) -> int:
    """A table row's weights plus its optimizer ``name``'s state, in bytes."""
    state = {"sgd": 0, "adagrad": dim, "rowwise_adagrad": 1}[name]
    return (dim + state) * element_size


class TableOptimizer:
    """Applies each table's ``RowGradient`` to its rows.

    Example::

        optimizer = TableOptimizer(tables, "rowwise_adagrad", lr=0.05)
        optimizer.step([table.take_row_gradient() for table in tables])
    """

    def __init__(
        self, tables: Sequence[SparseTable], name: str, lr: float, eps: float = 1e-8
    ) -> None:
        if name not in TABLE_OPTIMIZERS:
            raise ValueError(f"table optimizer {name!r}; choose one of {TABLE_OPTIMIZERS}")
        self.tables, self.name, self.lr, self.eps = list(tables), name, lr, eps
        self.state: list[Tensor] = []
        for table in self.tables:
            w = table.weight
            if name == "adagrad":
                self.state.append(torch.zeros_like(w))
            elif name == "rowwise_adagrad":
                self.state.append(w.new_zeros(w.shape[0]))

    @torch.no_grad()
    def step(self, grads: Sequence[RowGradient]) -> None:
        for i, (table, grad) in enumerate(zip(self.tables, grads, strict=True)):
            if grad.rows.numel() == 0:
                continue
            weight, rows, g = table.weight, grad.rows, grad.values
            if self.name == "sgd":
                weight.index_add_(0, rows, g, alpha=-self.lr)
                continue
            state = self.state[i]
            if self.name == "adagrad":
                summed = state.index_select(0, rows).addcmul_(g, g)
                state.index_copy_(0, rows, summed)
                std = summed.sqrt_().add_(self.eps)
            else:
                summed = state.index_select(0, rows).add_(g.square().mean(dim=1))
                state.index_copy_(0, rows, summed)
                std = summed.sqrt_().add_(self.eps).unsqueeze(1)
            updated = weight.index_select(0, rows).addcdiv_(g, std, value=-self.lr)
            weight.index_copy_(0, rows, updated)

    def state_dict(self) -> dict[str, object]:
        return {"name": self.name, "state": [s.clone() for s in self.state]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        if state["name"] != self.name:
            raise ValueError(f"a {state['name']} table optimizer's state loaded into {self.name}")
        for mine, saved in zip(self.state, state["state"], strict=True):
            mine.copy_(saved)
