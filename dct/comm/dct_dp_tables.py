"""DCT-DP for embedding tables: thresholded row gradients, averaged over a replica group.

A table's gradient is the rows a batch touched (``dct.embedding``), so DCT-DP applies to those
rows, not to a table-sized buffer. Per table, every step after the exact warm-up::

    acc = row gradient + residual            # over the rows touched now or holding a residual
    send acc where |acc| >= tau              # tau as the tower's: rare estimates, density guard
    residual = acc - sent                    # rows over the bound are sent whole (row_residual)
    gradient = (sum over replicas of what they sent) / replicas

The target is ``density`` times the step's touched entries, and the reference its bytes are
judged against is the uncompressed exchange of the same touched rows (``dct.comm.sparse_rows``).
All of a rank's tables go out in one exchange: an all-gather of the entry counts, then values
(``value_dtype``) and Elias-Fano coded positions to every peer with one ``all_to_all_single``.
Thresholds, guard and counters are a ``DCTDPState``'s, so reports and checkpoints read the same.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from dct.comm.dct_dp import DCTDPState
from dct.comm.meter import ByteMeter, all_gather_bytes
from dct.comm.sparse_all_reduce import (
    COUNT_BYTES,
    all_gather_counts,
    exchange_entries,
    payload_bytes,
)
from dct.comm.sparse_rows import ID_BYTES, average_rows
from dct.compression.row_residual import RowResidual
from dct.compression.wire_dtype import to_wire
from dct.embedding.rows import RowGradient


class TableDCTDPState:
    """DCT-DP over the row gradients of ``table_rows``-sized tables named ``names``.

    ``dp`` holds the settings, thresholds, guard and counters (``compression_stats()``,
    ``thresholds()``); each table keeps at most ``max_residual_rows`` rows of residual.

    Example::

        dp = DCTDPState(group, density=0.005)
        state = TableDCTDPState(dp, ["t0", "t1"], [1000, 50], dim=16, meter=ByteMeter())
        grads = state.average([t.take_row_gradient() for t in tables])
    """

    def __init__(
        self,
        dp: DCTDPState,
        names: Sequence[str],
        table_rows: Sequence[int],
        dim: int,
        meter: ByteMeter,
        max_residual_rows: int = 65536,
    ) -> None:
        self.dp, self.names, self.dim, self.meter = dp, list(names), dim, meter
        self.table_rows = list(table_rows)
        self.residuals = [RowResidual(dim, max_residual_rows) for _ in self.names]
        self.flushed_rows = 0

    def compression_stats(self) -> dict[str, float]:
        return {**self.dp.compression_stats(), "flushed_rows": self.flushed_rows}

    def thresholds(self) -> dict[str, float]:
        return self.dp.thresholds()

    def select_ms_per_step(self) -> float:
        return self.dp.select_ms_per_step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "dp": self.dp.state_dict(),
            "residuals": [r.state_dict() for r in self.residuals],
            "flushed_rows": self.flushed_rows,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dp.load_state_dict(state["dp"])
        for residual, saved in zip(self.residuals, state["residuals"], strict=True):
            residual.load_state_dict(saved)
        self.flushed_rows = state["flushed_rows"]

    def average(self, grads: Sequence[RowGradient]) -> list[RowGradient]:
        """Each table's gradient averaged over the group, as DCT-DP lets it through."""
        group = self.dp.process_group
        world = dist.get_world_size(group)
        touched = sum(g.rows.numel() for g in grads)
        row_bytes = ID_BYTES + self.dim * 4
        dense = all_gather_bytes(touched * row_bytes + COUNT_BYTES * len(grads), world)
        if not self.dp.compressing:  # exact: the uncompressed row exchange
            self.dp.record_bytes(dense, dense)
            self.dp.end_step()
            return average_rows(grads, group, self.meter)
        positions, values = self._select(grads)
        universe = sum(self.table_rows) * self.dim
        counts = all_gather_counts(positions.numel(), group, values.device)
        pairs = (
            exchange_entries(positions, values, universe, counts, group).wait()
            if sum(counts)
            else [(positions, values)]  # nothing selected anywhere: no payload to exchange
        )
        mine = payload_bytes(positions.numel(), values.dtype, universe)
        sent = all_gather_bytes(mine + COUNT_BYTES, world)
        self.dp.record_bytes(sent, dense)
        self.meter.record(self.dp.channel, sent, dense)
        self.dp.end_step()
        return self._to_rows(pairs, grads[0].values.dtype, world)

    def _select(self, grads: Sequence[RowGradient]) -> tuple[Tensor, Tensor]:
        """Every table's selected entries, as positions in the tables laid end to end."""
        positions, values = [], []
        base = 0
        for name, grad, residual, rows in zip(self.names, grads, self.residuals, self.table_rows):
            acc = residual.accumulate(grad)
            flat = acc.values.view(-1)
            where, chosen = self.dp.threshold_layer(name, flat, grad.values.numel())
            chosen = chosen.float()
            flush = residual.keep(acc)
            if flush is not None:  # over the bound: send the whole rows, merged with the chosen
                self.flushed_rows += flush.rows.numel()
                cols = torch.arange(self.dim, device=flat.device)
                entries = (flush.rows.unsqueeze(1) * self.dim + cols).view(-1)
                table_where = acc.rows[where // self.dim] * self.dim + where % self.dim
                merged = torch.cat([table_where, entries])
                merged, inverse = torch.unique(merged, sorted=True, return_inverse=True)
                sums = chosen.new_zeros(merged.numel())
                sums.index_add_(0, inverse, torch.cat([chosen, flush.values.reshape(-1)]))
                positions.append(merged + base)
                values.append(sums)
            else:
                positions.append(acc.rows[where // self.dim] * self.dim + where % self.dim + base)
                values.append(chosen)
            base += rows * self.dim
        return torch.cat(positions), to_wire(torch.cat(values), self.dp.value_dtype)

    def _to_rows(
        self, pairs: list[tuple[Tensor, Tensor]], dtype: torch.dtype, world: int
    ) -> list[RowGradient]:
        """Split every rank's entries by table and sum them into row gradients."""
        where = torch.cat([p for p, _ in pairs])
        values = torch.cat([v for _, v in pairs]).to(dtype)
        bases = torch.tensor([0, *self.table_rows], device=where.device).cumsum(0) * self.dim
        table_of = torch.searchsorted(bases, where, right=True) - 1
        grads = []
        for t in range(len(self.names)):
            mine = table_of == t
            local = where[mine] - bases[t]
            rows, inverse = torch.unique(local // self.dim, sorted=True, return_inverse=True)
            summed = values.new_zeros(rows.numel(), self.dim)
            summed.index_put_((inverse, local % self.dim), values[mine], accumulate=True)
            grads.append(RowGradient(rows, summed / world))
        return grads
