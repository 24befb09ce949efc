"""Elias-Fano code of sorted positions: about ``2 + log2(universe / count)`` bits each.

``count`` strictly increasing positions in ``[0, universe)`` are split into ``low_bits`` low bits,
stored verbatim, and a high part stored in unary as a bit vector (bit ``high_i + i`` set). At the
density DCT-DP sends (0.5 % of entries) that is about 9.6 bits a position, where 32-bit indices
take 32 and 16-bit deltas 16. Decoding needs ``count`` and ``universe``, which the receiver knows.
Bits are packed little-endian within each byte.
"""

from __future__ import annotations

import torch
from torch import Tensor


def low_bit_width(count: int, universe: int) -> int:
    """Low bits per position: ``floor(log2(universe / count))``, at least 0."""
    if count == 0:
        return 0
    return max(0, (universe // count).bit_length() - 1)


def encoded_size(count: int, universe: int) -> int:
    """Bytes of the code of ``count`` positions out of ``universe``."""
    if count == 0:
        return 0
    low = low_bit_width(count, universe)
    return _bytes_for(count * low) + _bytes_for(_upper_bits(count, universe, low))


def encode_positions(positions: Tensor, universe: int) -> Tensor:
    """``uint8`` code of strictly increasing int64 ``positions``, all in ``[0, universe)``.

    Example::

        code = encode_positions(torch.tensor([3, 70, 900]), universe=1000)
        decode_positions(code, count=3, universe=1000)  # tensor([3, 70, 900])
    """
    count = positions.numel()
    if count == 0:
        return torch.empty(0, dtype=torch.uint8, device=positions.device)
    low = low_bit_width(count, universe)
    shifts = torch.arange(low, device=positions.device)
    low_bits = (positions.unsqueeze(1) >> shifts) & 1
    upper = torch.zeros(
        _upper_bits(count, universe, low), dtype=torch.uint8, device=positions.device
    )
    upper[(positions >> low) + torch.arange(count, device=positions.device)] = 1
    return torch.cat([_pack_bits(low_bits.reshape(-1)), _pack_bits(upper)])


def decode_positions(code: Tensor, count: int, universe: int) -> Tensor:
    """The int64 positions ``encode_positions`` coded into ``code``."""
    if count == 0:
        return torch.empty(0, dtype=torch.int64, device=code.device)
    low = low_bit_width(count, universe)
    low_bytes = _bytes_for(count * low)
    low_bits = _unpack_bits(code[:low_bytes])[: count * low].view(count, low).long()
    low_part = (low_bits << torch.arange(low, device=code.device)).sum(dim=1)
    ones = torch.nonzero(_unpack_bits(code[low_bytes:])).squeeze(1)
    high_part = ones - torch.arange(count, device=code.device)
    return (high_part << low) | low_part


def _upper_bits(count: int, universe: int, low: int) -> int:
    return count + ((universe - 1) >> low) + 1


def _bytes_for(bits: int) -> int:
    return (bits + 7) // 8


def _pack_bits(bits: Tensor) -> Tensor:
    padded = torch.zeros(_bytes_for(bits.numel()) * 8, dtype=torch.uint8, device=bits.device)
    padded[: bits.numel()] = bits
    weights = torch.tensor([1 << i for i in range(8)], dtype=torch.uint8, device=bits.device)
    return (padded.view(-1, 8) * weights).sum(dim=1, dtype=torch.uint8)


def _unpack_bits(packed: Tensor) -> Tensor:
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    return ((packed.unsqueeze(1) >> shifts) & 1).reshape(-1)
