"""Row-wise affine quantization to ``bits`` (8 or 4) with a scale and an offset per row.

A row ``x`` of ``s`` values becomes ``s`` integer codes ``q`` in ``[0, 2^bits - 1]`` and two fp32
numbers, ``offset = min(x)`` and ``scale = (max(x) - min(x)) / (2^bits - 1)``; it is rebuilt as
``offset + scale * q``. Rounding to the nearest code errs by at most ``scale / 2`` per value;
stochastic rounding (``floor(v + u)``, ``u`` uniform in ``[0, 1)``) errs by less than ``scale``
but is unbiased, which matters for gradients summed over many steps. A constant row has scale 0
and comes back exactly.

Wire form of a quantized row: its codes (one byte each for 8 bits, two codes a byte for 4 bits,
low nibble first), then ``scale`` and ``offset`` as raw fp32 bytes: ``quantized_width`` bytes in
all, in one ``uint8`` row, so a payload's size depends only on its shape. Sender and receiver
must share byte order, as the ranks of one job do. This is FBGEMM's fused row-wise layout
(codes, then fp32 scale and bias), the one TorchRec's INT8 and INT4 comm codecs send.
"""

from __future__ import annotations

import torch
from torch import Tensor

SUPPORTED_BITS = (8, 4)
_SCALE_BYTES = 2 * 4  # fp32 scale and fp32 offset


def code_bytes(width: int, bits: int) -> int:
    """Bytes of a row's ``width`` codes at ``bits`` each."""
    return width if bits == 8 else (width + 1) // 2


def quantized_width(width: int, bits: int) -> int:
    """Bytes of one quantized row of ``width`` values: codes, scale, offset."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits={bits}: use one of {SUPPORTED_BITS}")
    return code_bytes(width, bits) + _SCALE_BYTES


def quantize(rows: Tensor, bits: int, stochastic: bool = False) -> Tensor:
    """``rows`` ``[n, s]`` (float) as ``[n, quantized_width(s, bits)]`` bytes."""
    n, width = rows.shape
    levels = (1 << bits) - 1
    x = rows.float()
    low, high = x.amin(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    scale = (high - low) / levels
    steps = (x - low) / torch.where(scale > 0, scale, torch.ones_like(scale))
    if stochastic:
        steps = torch.floor(steps + torch.rand_like(steps))
    else:
        steps = torch.round(steps)
    codes = steps.clamp_(0, levels).to(torch.uint8)
    if bits == 4:
        if width % 2:
            codes = torch.cat([codes, codes.new_zeros(n, 1)], dim=1)
        codes = codes[:, 0::2] | (codes[:, 1::2] << 4)
    tail = torch.cat([scale, low], dim=1).contiguous().view(torch.uint8)
    return torch.cat([codes, tail], dim=1)


def dequantize(packed: Tensor, width: int, bits: int, dtype: torch.dtype) -> Tensor:
    """The ``[n, width]`` rows of ``dtype`` that ``quantize`` turned into ``packed``."""
    n = packed.shape[0]
    codes_end = code_bytes(width, bits)
    codes = packed[:, :codes_end]
    if bits == 4:
        codes = torch.stack([codes & 0x0F, codes >> 4], dim=2).reshape(n, 2 * codes_end)[:, :width]
    # A copy, not a view: the bytes may start at an offset a float cannot be read from.
    tail = packed[:, codes_end : codes_end + _SCALE_BYTES].clone(
        memory_format=torch.contiguous_format
    )
    tail = tail.view(torch.float32)
    scale, low = tail[:, :1], tail[:, 1:]
    return (low + scale * codes.float()).to(dtype)
