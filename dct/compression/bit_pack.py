"""Columns of small non-negative integers packed into the fewest whole bytes.

Column ``t`` of an ``[n, columns]`` matrix takes ``bits[t]`` bits a value (a column numbering
``u`` things needs ``bits_for(u)``: none for one thing). Row by row, each value's bits, lowest
first, follow one another; the last byte is padded with zeros. The de-duplicated all-to-all
sends its sample index this way (``dct.comm.dedup_all_to_all``).

A row's columns are gathered into words of at most ``GROUP_BITS`` bits, and each word is added
into the bytes it straddles: a handful of tensor operations over ``[n, words, 8]``, whatever
the widths, in place of one element per bit.

Example::

    bits = [bits_for(3), bits_for(300)]        # [2, 9]
    packed = pack_columns(index, bits)         # uint8, packed_bytes(n, bits) of them
    assert torch.equal(unpack_columns(packed, n, bits), index)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

GROUP_BITS = 56
"""A word's bits; shifted to its place within a byte (up to 7 bits) it stays below int64's sign."""

_BYTE_SHIFTS = torch.arange(0, 64, 8, dtype=torch.long)
_OURS = torch.tensor([255] * 7 + [127], dtype=torch.long)
"""The bits of the 8 bytes a word can reach that can be its own (never int64's sign)."""


def bits_for(count: int) -> int:
    """Bits that number ``count`` things, ``0 .. count - 1``."""
    return max(int(count) - 1, 0).bit_length()


def packed_bytes(n: int, bits: Sequence[int]) -> int:
    """Bytes of ``n`` rows packed with ``bits`` per column."""
    return -(-n * sum(bits) // 8)


@dataclass(frozen=True)
class _Words:
    """``column``'s word and its place in it; each word's first bit within a row."""

    word: Tensor
    place: Tensor
    start: Tensor


def _words(bits: Sequence[int], device: torch.device) -> _Words:
    """Consecutive columns gathered into words of at most ``GROUP_BITS`` bits."""
    word, place, starts, used = [], [], [0], 0
    for b in bits:
        if b > GROUP_BITS:
            raise ValueError(f"a column of {b} bits is wider than a word ({GROUP_BITS})")
        if used + b > GROUP_BITS:
            starts.append(starts[-1] + used)
            used = 0
        word.append(len(starts) - 1)
        place.append(used)
        used += b
    as_tensor = lambda x: torch.tensor(x, dtype=torch.long, device=device)  # noqa: E731
    return _Words(as_tensor(word), as_tensor(place), as_tensor(starts))


def _byte_spans(n: int, bits: Sequence[int], words: _Words) -> tuple[Tensor, Tensor]:
    """For every row's every word: the byte its first bit lies in, and the bit within it."""
    rows = torch.arange(n, device=words.start.device).unsqueeze(1)
    first_bit = rows * sum(bits) + words.start
    return first_bit // 8, first_bit % 8


def pack_columns(values: Tensor, bits: Sequence[int]) -> Tensor:
    """``values`` ``[n, len(bits)]`` (each below ``2 ** bits[t]``) as ``packed_bytes`` bytes."""
    n, device = values.shape[0], values.device
    words = _words(bits, device)
    word_values = torch.zeros(n, words.start.numel(), dtype=torch.long, device=device)
    word_values.index_add_(1, words.word, values.long() << words.place)
    byte, shift = _byte_spans(n, bits, words)
    pieces = ((word_values << shift).unsqueeze(2) >> _BYTE_SHIFTS.to(device)) & 255
    where = byte.unsqueeze(2) + torch.arange(8, device=device)
    out = torch.zeros(packed_bytes(n, bits) + 8, dtype=torch.long, device=device)
    # Words share a byte only where their bits do not overlap: adding is or-ing.
    out.index_add_(0, where.reshape(-1), pieces.reshape(-1))
    return out[: packed_bytes(n, bits)].to(torch.uint8)


def unpack_columns(packed: Tensor, n: int, bits: Sequence[int]) -> Tensor:
    """The ``[n, len(bits)]`` int64 values ``pack_columns`` packed."""
    device = packed.device
    words = _words(bits, device)
    byte, shift = _byte_spans(n, bits, words)
    padded = torch.cat([packed.reshape(-1).long(), packed.new_zeros(8, dtype=torch.long)])
    gathered = padded[byte.unsqueeze(2) + torch.arange(8, device=device)] & _OURS.to(device)
    word_values = (gathered << _BYTE_SHIFTS.to(device)).sum(2) >> shift
    masks = (1 << torch.tensor(list(bits), dtype=torch.long, device=device)) - 1
    return (word_values.index_select(1, words.word) >> words.place) & masks
