"""DCT-MP's selection: the ``k`` largest ``|x|`` of every row, packed as values and positions.

A row is what one sample sends one destination (or one table's slice of it). Every row keeps
exactly ``k`` entries, so a payload's size depends only on the shape, never on the data: no size
exchange is needed before the transfer. Equal magnitudes go to the lower position, so the same
rows select the same entries on every machine. The receiver rebuilds the row with zeros
elsewhere; gradients later travel back at the same positions, so only their values cross.

Wire form of a packed row: its ``k`` values in the value dtype, then its ``k`` positions in the
smallest integer type that holds the row width, both as raw bytes (one ``uint8`` buffer, one
collective). Sender and receiver must share byte order, as the ranks of one job do.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dct.compression.wire_dtype import to_wire


def position_dtype(width: int) -> torch.dtype:
    """The smallest integer type that holds every position of a row of ``width`` entries."""
    if width <= 1 << 8:
        return torch.uint8
    if width <= 1 << 15:
        return torch.int16
    return torch.int32


def packed_width(k: int, width: int, value_dtype: torch.dtype) -> int:
    """Bytes of one packed row: ``k`` values and ``k`` positions."""
    return k * (value_dtype.itemsize + position_dtype(width).itemsize)


def top_k_positions(rows: Tensor, k: int) -> Tensor:
    """``[n, k]`` positions of each row's ``k`` largest ``|x|``, largest first, ties to the lower.

    A stable sort rather than ``torch.topk``, whose order among equal values is unspecified;
    for ``k == 1``, ``argmax``, which returns the first maximum and is several times faster.
    """
    magnitudes = rows.abs()
    if k == 1:
        return magnitudes.argmax(dim=1, keepdim=True)
    return torch.sort(magnitudes, dim=1, descending=True, stable=True).indices[:, :k]


def pack(rows: Tensor, positions: Tensor, value_dtype: torch.dtype) -> Tensor:
    """``uint8 [n, packed_width]``: the values of ``rows`` at ``positions``, then the positions.

    Values beyond ``value_dtype``'s range are clamped to it (see ``to_wire``)."""
    values = to_wire(rows.gather(1, positions), value_dtype)
    wire_positions = positions.to(position_dtype(rows.shape[1]))
    return torch.cat([values.view(torch.uint8), wire_positions.view(torch.uint8)], dim=1)


def unpack(packed: Tensor, k: int, width: int, value_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(values [n, k] in value_dtype, positions [n, k] int64)`` from ``pack``'s bytes."""
    value_bytes = k * value_dtype.itemsize
    values = _fresh_copy(packed[:, :value_bytes]).view(value_dtype)
    positions = _fresh_copy(packed[:, value_bytes:]).view(position_dtype(width)).long()
    return values, positions


def _fresh_copy(columns: Tensor) -> Tensor:
    """A row-major copy; ``contiguous()`` may keep an empty slice's strides, which ``view``
    with another element size rejects."""
    return columns.new_empty(columns.shape).copy_(columns)


def scatter_rows(values: Tensor, positions: Tensor, width: int) -> Tensor:
    """Rows ``[n, width]`` holding ``values`` at ``positions`` and zeros elsewhere."""
    rows = values.new_zeros(values.shape[0], width)
    return rows.scatter_(1, positions, values)
