"""Columns of small non-negative integers packed into the fewest whole bytes.

Column ``t`` of an ``[n, columns]`` matrix takes ``bits[t]`` bits a value (a column numbering
``u`` things needs ``bits_for(u)``: none for one thing). Row by row, each value's bits, lowest
first, follow one another; the last byte is padded with zeros. The de-duplicated all-to-all
sends its sample index this way (``dct.comm.dedup_all_to_all``).

Example::

    bits = [bits_for(3), bits_for(300)]        # [2, 9]
    packed = pack_columns(index, bits)         # uint8, packed_bytes(n, bits) of them
    assert torch.equal(unpack_columns(packed, n, bits), index)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

_BYTE = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def bits_for(count: int) -> int:
    """Bits that number ``count`` things, ``0 .. count - 1``."""
    return max(int(count) - 1, 0).bit_length()


def packed_bytes(n: int, bits: Sequence[int]) -> int:
    """Bytes of ``n`` rows packed with ``bits`` per column."""
    return -(-n * sum(bits) // 8)


def _layout(bits: Sequence[int], device: torch.device) -> tuple[Tensor, Tensor]:
    """For every bit of a row: its column and its place in the value (``int32``: values here
    are counts below ``2 ** 31``, and half-width arithmetic moves half the memory)."""
    widths = torch.tensor(list(bits), dtype=torch.long, device=device)
    column = torch.repeat_interleave(torch.arange(len(bits), device=device), widths)
    place = torch.arange(column.numel(), device=device) - (widths.cumsum(0) - widths)[column]
    return column, place.to(torch.int32)


def pack_columns(values: Tensor, bits: Sequence[int]) -> Tensor:
    """``values`` ``[n, len(bits)]`` (each below ``2 ** bits[t]``) as ``packed_bytes`` bytes."""
    column, place = _layout(bits, values.device)
    bit = (values.to(torch.int32).index_select(1, column) >> place) & 1
    flat = bit.to(torch.uint8).reshape(-1)
    padded = torch.cat([flat, flat.new_zeros(-flat.numel() % 8)]).view(-1, 8)
    return (padded * _BYTE.to(values.device)).sum(1, dtype=torch.uint8)


def unpack_columns(packed: Tensor, n: int, bits: Sequence[int]) -> Tensor:
    """The ``[n, len(bits)]`` int64 values ``pack_columns`` packed."""
    column, place = _layout(bits, packed.device)
    flat = (packed.view(-1, 1) & _BYTE.to(packed.device)).ne(0).view(-1)[: n * column.numel()]
    terms = flat.view(n, column.numel()).to(torch.int32) << place
    return terms.new_zeros(n, len(bits)).index_add_(1, column, terms).long()
