"""DCT-DP's error-feedback memory for embedding tables: the unsent entries of touched rows.

A dense residual would be a second copy of every table. This one holds only rows with an unsent
entry, at most ``max_rows`` of them, in a pool of slots; a row finds its slot through an index of
4 bytes per stored row (``slot_of``), so every per-step operation is a gather or a scatter over
the rows the step touched, never a pass over the residual or the table:

- ``accumulate`` adds each touched row's residual to its gradient (the accumulator);
- the caller selects from the accumulator and subtracts what it sends, in place;
- ``keep`` stores what the touched rows still hold, frees the slots of rows left with nothing,
  and, when more rows would stay than ``max_rows`` allows, hands back the rows to send whole
  (the largest residuals, by L1 norm, among the rows touched now), so nothing is lost.

A row's residual waits in its slot until a batch touches the row again (or until it is sent
whole): a row no batch reads needs no update yet, and between touches its residual cannot
change. Several tables share one pool when their rows are laid end to end.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dct.embedding.rows import RowGradient, coalesce

FIRST_SLOTS = 1024


class RowResidual:
    """The residual of ``num_rows`` rows of width ``dim``, at most ``max_rows`` of them held.

    Example::

        residual = RowResidual(num_rows=1000, dim=16, max_rows=65536)
        acc, slots = residual.accumulate(grad.rows, grad.values)   # a new tensor
        ... select from acc, subtracting what is sent, in place ...
        whole = residual.overflow(slots, acc)       # rows (indices into acc) to send whole
        ... send them whole, zero them in acc ...
        residual.keep(grad.rows, slots, acc)
    """

    def __init__(self, num_rows: int, dim: int, max_rows: int, device: torch.device) -> None:
        if max_rows < 0:
            raise ValueError(f"max_rows={max_rows} must be >= 0")
        self.dim, self.max_rows = dim, max_rows
        self.slot_of = torch.full((num_rows,), -1, dtype=torch.int32, device=device)
        self.values = torch.zeros(min(max_rows, FIRST_SLOTS), dim, device=device)
        self.row_of = torch.full((self.values.shape[0],), -1, dtype=torch.int64, device=device)
        self.free = torch.arange(self.values.shape[0] - 1, -1, -1, device=device)

    @property
    def held(self) -> int:
        """Rows holding a residual now."""
        return self.values.shape[0] - self.free.numel()

    def accumulate(self, rows: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """``values`` ([n, dim], rows ``rows``) plus the residual those rows hold, as a new
        tensor, and each row's slot (``-1``: it held none)."""
        slots = self.slot_of[rows].long()
        if self.values.shape[0] == 0:
            return values.clone(), slots
        held = self.values[slots.clamp_min(0)].masked_fill_((slots < 0).unsqueeze(1), 0.0)
        return values + held.to(values.dtype), slots

    def may_overflow(self, slots: Tensor) -> bool:
        """Whether keeping the rows of ``slots`` could exceed ``max_rows`` (if not, ``overflow``
        has nothing to hand back and need not be asked)."""
        return self.held + int((slots < 0).sum()) > self.max_rows

    def overflow(self, slots: Tensor, acc: Tensor) -> Tensor:
        """Indices into ``acc`` of the rows to send whole, so that what stays fits: ``acc`` is
        the accumulator after selection (what each row would keep)."""
        mass = acc.abs().sum(dim=1)
        live = mass > 0
        staying = self.held - int(((slots >= 0) & ~live).sum()) + int(((slots < 0) & live).sum())
        # More than max_rows held only after a load (replicas' residuals merged on a new grid):
        # then every live touched row goes out whole until the residual is back in bound.
        excess = min(staying - self.max_rows, int(live.sum()))
        if excess <= 0:
            return slots[:0]
        return torch.topk(mass.where(live, -1.0), excess, sorted=False).indices.sort().values

    def keep(self, rows: Tensor, slots: Tensor, acc: Tensor, bounded: bool = True) -> None:
        """Store what ``rows`` (with ``slots`` from ``accumulate``) still hold in ``acc``;
        ``bounded=False`` may hold more than ``max_rows`` (a load only)."""
        live = acc.abs().sum(dim=1) > 0
        held = slots >= 0
        stay = (held & live).nonzero().squeeze(1)
        self.values[slots[stay]] = acc[stay].to(self.values.dtype)
        gone = (held & ~live).nonzero().squeeze(1)
        self._release(rows[gone], slots[gone])
        new = (~held & live).nonzero().squeeze(1)
        if new.numel():
            taken = self._take(new.numel(), bounded)
            self.values[taken] = acc[new].to(self.values.dtype)
            self.row_of[taken] = rows[new]
            self.slot_of[rows[new]] = taken.to(torch.int32)

    def rows_between(self, start: int, stop: int) -> RowGradient:
        """The residual of rows ``[start, stop)``, as rows counted from ``start``, ascending."""
        inside = ((self.row_of >= start) & (self.row_of < stop)).nonzero().squeeze(1)
        return coalesce(self.row_of[inside] - start, self.values[inside])

    def load(self, start: int, grad: RowGradient) -> None:
        """Hold ``grad`` (rows counted from ``start``; none held there yet)."""
        if grad.rows.numel():
            zero = torch.full_like(grad.rows, -1)
            self.keep(grad.rows.to(self.slot_of.device) + start, zero, grad.values, bounded=False)

    def _release(self, rows: Tensor, slots: Tensor) -> None:
        self.slot_of[rows] = -1
        self.row_of[slots] = -1
        self.free = torch.cat([self.free, slots])

    def _take(self, count: int, bounded: bool) -> Tensor:
        if count > self.free.numel():
            self._grow(count - self.free.numel(), bounded)
        taken, self.free = self.free[-count:], self.free[:-count]
        return taken

    def _grow(self, needed: int, bounded: bool) -> None:
        size = self.values.shape[0]
        limit = self.max_rows if bounded else size + needed
        if size + needed > limit:
            raise RuntimeError(
                f"the residual needs {size + needed} slots, over max_rows={self.max_rows}: "
                "send the overflow rows whole first"
            )
        grown = min(max(limit, self.max_rows), max(2 * size, size + needed))
        self.values = torch.cat([self.values, self.values.new_zeros(grown - size, self.dim)])
        self.row_of = torch.cat([self.row_of, self.row_of.new_full((grown - size,), -1)])
        added = torch.arange(grown - 1, size - 1, -1, device=self.free.device)
        self.free = torch.cat([added, self.free])
