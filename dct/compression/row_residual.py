"""DCT-DP's error-feedback memory for an embedding table: the unsent entries of touched rows.

A dense residual would be a table-sized buffer per table. This one holds only rows with an
unsent entry, at most ``max_rows`` of them: ``accumulate`` adds a step's row gradient to it (the
accumulator covers the rows touched now or holding a residual), and ``keep`` stores what the
selection left. When more than ``max_rows`` rows would stay, the rows with the largest residual
(by L1 norm) are handed back to be sent whole: nothing is lost, and the memory is bounded by
``max_rows * (dim * 4 + 8)`` bytes per table.
"""

from __future__ import annotations

import torch

from dct.embedding.rows import RowGradient, coalesce


class RowResidual:
    """Example::

    residual = RowResidual(dim=16, max_rows=65536)
    acc = residual.accumulate(grad)          # grad + residual, over the union of their rows
    ... select from acc.values.view(-1), subtracting what is sent, in place ...
    flush = residual.keep(acc)               # rows to send whole (over the bound), or None
    """

    def __init__(self, dim: int, max_rows: int) -> None:
        if max_rows < 0:
            raise ValueError(f"max_rows={max_rows} must be >= 0")
        self.dim, self.max_rows = dim, max_rows
        self.rows: RowGradient | None = None

    def accumulate(self, grad: RowGradient) -> RowGradient:
        if self.rows is None or self.rows.rows.numel() == 0:
            return RowGradient(grad.rows, grad.values.clone())
        rows = torch.cat([self.rows.rows.to(grad.rows.device), grad.rows])
        values = torch.cat([self.rows.values.to(grad.values.device), grad.values])
        return coalesce(rows, values)

    def keep(self, acc: RowGradient) -> RowGradient | None:
        """Store ``acc``'s rows that still hold something; the overflow rows to send whole."""
        mass = acc.values.abs().sum(dim=1)
        live = mass.nonzero().squeeze(1)
        flush = None
        if live.numel() > self.max_rows:
            order = mass[live].argsort(descending=True, stable=True)
            out = live[order[: live.numel() - self.max_rows]].sort().values
            live = live[order[live.numel() - self.max_rows :]].sort().values
            flush = RowGradient(acc.rows[out], acc.values[out])
        self.rows = RowGradient(acc.rows[live], acc.values[live])
        return flush

    def state_dict(self) -> dict[str, object]:
        rows = self.rows
        return {
            "rows": None if rows is None else rows.rows.cpu().clone(),
            "values": None if rows is None else rows.values.cpu().clone(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        if state["rows"] is None:
            self.rows = None
        else:
            self.rows = RowGradient(state["rows"], state["values"])
