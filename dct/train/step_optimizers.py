"""The two optimizers of a step: ``torch.optim`` for the dense tower, ``TableOptimizer`` for the
embedding tables (which hand over the rows they touched, not a dense gradient)."""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from dct.config import OptimConfig
from dct.embedding.rows import RowGradient
from dct.embedding.table import SparseTable
from dct.embedding.table_optimizers import TableOptimizer


def dense_optimizer(
    cfg: OptimConfig, lr: float, params: Iterable[nn.Parameter]
) -> torch.optim.Optimizer:
    if cfg.name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=cfg.adagrad_eps)
    return torch.optim.SGD(params, lr=lr)


class Optimizers:
    """The dense optimizer over ``params`` and the tables' optimizer over ``tables``.

    Example::

        optimizers = Optimizers(cfg.optim, cfg.train.lr, model.dense_parameters(), model.tables)
        optimizers.zero_grad()
        loss.backward()
        optimizers.step([table.take_row_gradient() for table in model.tables])
    """

    def __init__(
        self,
        cfg: OptimConfig,
        lr: float,
        params: Iterable[nn.Parameter],
        tables: Sequence[SparseTable],
    ) -> None:
        dense = list(params)
        self.dense = dense_optimizer(cfg, lr, dense) if dense else None
        tables_lr = lr if cfg.tables_lr is None else cfg.tables_lr
        self.tables = TableOptimizer(tables, cfg.tables, tables_lr, cfg.adagrad_eps)

    def zero_grad(self) -> None:
        if self.dense is not None:
            self.dense.zero_grad(set_to_none=True)

    def step(self, table_gradients: Sequence[RowGradient]) -> None:
        if self.dense is not None:
            self.dense.step()
        self.tables.step(table_gradients)
