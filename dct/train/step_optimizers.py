"""The two optimizers of a step: ``torch.optim`` for the dense tower, ``TableOptimizer`` for the
embedding tables (which hand over the rows they touched, not a dense gradient)."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from dct.config import OptimConfig
from dct.embedding.fused import FusedTables
from dct.embedding.rows import RowGradient
from dct.embedding.table import SparseTable
from dct.embedding.table_optimizers import TableOptimizer
from dct.parallel.model_state import load_in_place, table_row_blocks
from dct.parallel.sharding import Shard


def dense_optimizer(
    cfg: OptimConfig, lr: float, params: Iterable[nn.Parameter]
) -> torch.optim.Optimizer:
    if cfg.name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=cfg.adagrad_eps)
    return torch.optim.SGD(params, lr=lr)


class Optimizers:
    """The dense optimizer over ``params`` (named) and the tables' optimizer over ``tables``,
    which hold the rows ``shards`` say of their tables. With ``fused``, FBGEMM's kernel updates
    the tables itself (``tables`` is empty) and holds their optimizer state.

    Example::

        optimizers = Optimizers(
            cfg.optim, cfg.train.lr, model.dense_named_parameters(), model.tables,
            [shard for shard, _ in model.table_blocks()], model.fused,
        )
        optimizers.zero_grad()
        loss.backward()
        optimizers.step([table.take_row_gradient() for table in model.tables])
    """

    def __init__(
        self,
        cfg: OptimConfig,
        lr: float,
        params: Iterable[tuple[str, nn.Parameter]],
        tables: Sequence[SparseTable],
        shards: Sequence[Shard] = (),
        fused: FusedTables | None = None,
    ) -> None:
        named = list(params)
        self.names = {id(param): name for name, param in named}
        dense = [param for _, param in named]
        self.dense = dense_optimizer(cfg, lr, dense) if dense else None
        tables_lr = lr if cfg.tables_lr is None else cfg.tables_lr
        self.tables = TableOptimizer(tables, cfg.tables, tables_lr, cfg.adagrad_eps)
        self.shards, self.fused = list(shards), fused

    def zero_grad(self) -> None:
        if self.dense is not None:
            self.dense.zero_grad(set_to_none=True)

    def step(self, table_gradients: Sequence[RowGradient]) -> None:
        if self.dense is not None:
            self.dense.step()
        self.tables.step(table_gradients)

    def _table_states(self) -> list[Tensor]:
        return self.fused.optimizer_states() if self.fused is not None else self.tables.state

    def state_dict(self) -> dict[str, Any]:
        """``dense/<parameter>/<key>``: the dense optimizer's tensors by parameter name;
        ``tables/<t>``: table ``t``'s optimizer state as row blocks of the whole table. The
        tensors are the optimizers' own, so a checkpoint loads into them in place."""
        state: dict[str, Any] = {}
        dense = self.dense.state if self.dense is not None else {}
        for param, values in dense.items():
            for key, value in values.items():
                if isinstance(value, torch.Tensor):
                    state[f"dense/{self.names[id(param)]}/{key}"] = value
        table_states = self._table_states()
        if table_states:  # SGD keeps none
            for table, rows in table_row_blocks(self.shards, table_states).items():
                state[f"tables/{table}"] = rows
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take ``state`` (of ``state_dict()``'s keys; a checkpoint loads into it in place)."""
        load_in_place(self.state_dict(), state)
