"""DCT-DP for embedding tables: thresholded row gradients, averaged over a replica group.

A table's gradient is the rows a batch touched (``dct.embedding``), so DCT-DP applies to those
rows, not to a table-sized buffer. Every step after the exact warm-up, all of a rank's tables at
once (their rows laid end to end, so each operation below is one over the touched rows, not a
loop over tables)::

    acc = row gradient + residual of the touched rows   # row_residual: slots, no pass over it
    send acc where |acc| >= tau of the row's table      # rare estimates, tracking, guard
    residual = acc - sent                               # rows over the bound are sent whole
    gradient = (sum over replicas of what they sent) / replicas

The target is ``density`` times the step's touched entries, and the reference its bytes are
judged against is the uncompressed exchange of the same touched rows (``dct.comm.sparse_rows``).
All of a rank's tables go out in one exchange: an all-gather of the entry counts, then values
(``value_dtype``) and Elias-Fano coded positions to every peer with one ``all_to_all_single``.
Thresholds, guard and counters are a ``DCTDPState``'s, so reports and checkpoints read the same.
"""

from __future__ import annotations

import itertools
import time
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
from dct.compression.hard_threshold import feed_back, take
from dct.compression.row_residual import RowResidual
from dct.embedding.rows import RowGradient


class TableDCTDPState:
    """DCT-DP over the row gradients of ``table_rows``-sized tables named ``names``.

    ``dp`` holds the settings, thresholds, guard and counters (``compression_stats()``,
    ``thresholds()``); the residual holds at most ``max_residual_rows`` rows per table, pooled
    over the tables (``len(names) * max_residual_rows`` rows in all).

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
        device: torch.device | str = "cpu",
    ) -> None:
        self.dp, self.names, self.dim, self.meter = dp, list(names), dim, meter
        self.table_rows = list(table_rows)
        self.bases = [0, *itertools.accumulate(self.table_rows)]
        self.residual = RowResidual(
            self.bases[-1], dim, max_residual_rows * len(self.names), torch.device(device)
        )
        self.flushed_rows = 0

    def compression_stats(self) -> dict[str, float]:
        return {**self.dp.compression_stats(), "flushed_rows": self.flushed_rows}

    def thresholds(self) -> dict[str, float]:
        return self.dp.thresholds()

    def select_ms_per_step(self) -> float:
        return self.dp.select_ms_per_step()

    def pack_ms_per_step(self) -> float:
        return self.dp.pack_ms_per_step()

    def residual_of(self, table: int) -> RowGradient:
        """Table ``table``'s residual rows now (table rows, ascending)."""
        return self.residual.rows_between(self.bases[table], self.bases[table + 1])

    def state_dict(self) -> dict[str, Any]:
        residuals = []
        for t in range(len(self.names)):
            held = self.residual_of(t)
            empty = held.rows.numel() == 0
            residuals.append(
                {
                    "rows": None if empty else held.rows.cpu().clone(),
                    "values": None if empty else held.values.cpu().clone(),
                }
            )
        return {
            "dp": self.dp.state_dict(),
            "residuals": residuals,
            "flushed_rows": self.flushed_rows,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dp.load_state_dict(state["dp"])
        self.residual = RowResidual(
            self.bases[-1], self.dim, self.residual.max_rows, self.residual.slot_of.device
        )
        if len(state["residuals"]) != len(self.names):
            raise ValueError(
                f"a checkpoint of {len(state['residuals'])} tables' residuals cannot load into "
                f"{len(self.names)} tables"
            )
        for t, saved in enumerate(state["residuals"]):
            if saved["rows"] is not None:
                self.residual.load(self.bases[t], RowGradient(saved["rows"], saved["values"]))
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
        started = time.perf_counter()
        positions, values = self._select(grads)
        self.dp.add_select_time(time.perf_counter() - started)
        universe = self.bases[-1] * self.dim
        counts = all_gather_counts(positions.numel(), group, values.device)
        clock = self.dp.add_pack_time
        pairs = (
            exchange_entries(positions, values, universe, counts, group, clock).wait()
            if sum(counts)
            else [(positions, values)]  # nothing selected anywhere: no payload to exchange
        )
        mine = payload_bytes(positions.numel(), values.dtype, universe)
        sent = all_gather_bytes(mine + COUNT_BYTES, world)
        self.dp.record_bytes(sent, dense)
        self.meter.record(self.dp.channel, sent, dense)
        started = time.perf_counter()
        averaged = self._to_rows(pairs, grads[0].values.dtype, world)
        self.dp.add_pack_time(time.perf_counter() - started)
        self.dp.end_step()
        return averaged

    def _select(self, grads: Sequence[RowGradient]) -> tuple[Tensor, Tensor]:
        """Every table's selected entries, as positions in the tables laid end to end."""
        counts = [g.rows.numel() for g in grads]
        rows = torch.cat([g.rows + base for g, base in zip(grads, self.bases)])
        acc, slots = self.residual.accumulate(rows, torch.cat([g.values for g in grads]))
        sizes = [count * self.dim for count in counts]
        positions = self.dp.threshold_segments(self.names, acc.view(-1), sizes, self.dim)
        whole = slots[:0]
        if self.residual.may_overflow(slots):
            left = acc.clone()
            left.view(-1)[positions] = 0.0
            whole = self.residual.overflow(slots, left)
        if whole.numel():  # over the bound: these rows go out whole
            keep = torch.zeros_like(acc, dtype=torch.bool)
            keep.view(-1)[positions] = True
            keep[whole] = acc[whole] != 0
            positions = keep.view(-1).nonzero().squeeze(1)
            self.flushed_rows += whole.numel()
        chosen = take(acc.view(-1), positions, self.dp.value_dtype)
        feed_back(acc.view(-1), chosen)
        acc[whole] = 0.0  # a whole row's rounding to the wire dtype is not kept (see docs)
        self.residual.keep(rows, slots, acc)
        at_row = chosen.positions // self.dim
        return rows[at_row] * self.dim + chosen.positions % self.dim, chosen.values

    def _to_rows(
        self, pairs: list[tuple[Tensor, Tensor]], dtype: torch.dtype, world: int
    ) -> list[RowGradient]:
        """Sum every rank's entries into row gradients, split by table."""
        where = torch.cat([p for p, _ in pairs])
        values = torch.cat([v for _, v in pairs]).to(dtype)
        rows, inverse = torch.unique(where // self.dim, sorted=True, return_inverse=True)
        summed = values.new_zeros(rows.numel(), self.dim)
        summed.index_put_((inverse, where % self.dim), values, accumulate=True)
        summed /= world
        bases = torch.tensor(self.bases, device=rows.device)
        cuts = torch.searchsorted(rows, bases).tolist()
        return [
            RowGradient(rows[a:b] - base, summed[a:b])
            for a, b, base in zip(cuts, cuts[1:], self.bases)
        ]
