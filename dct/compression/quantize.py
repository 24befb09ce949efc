"""Row-wise affine quantization to ``bits`` (8 or 4) with a scale and an offset per row.

A row ``x`` of ``s`` values becomes ``s`` integer codes ``q`` in ``[0, 2^bits - 1]`` and two
numbers, ``offset = min(x)`` and ``scale = (max(x) - offset) / (2^bits - 1)``; it is rebuilt as
``offset + scale * q``. For 8 bits both are fp32. For 4 bits they are bf16, as FBGEMM's n-bit
rows carry 16-bit ones (fp16 there; bf16 here, whose range holds gradients of 1e-8 without
subnormal loss): the offset rounded down and the scale up, so every value still lies within the
codes' span and the bound below holds for the rounded scale, a step at most 2^-7 relatively
coarser (plus 2^-7 of ``|min(x)|`` over the levels). Rounding to the nearest code errs by at
most ``scale / 2`` per value;
stochastic rounding (``floor(v + u)``, ``u`` uniform in ``[0, 1)``) errs by less than ``scale``
but is unbiased, which matters for gradients summed over many steps. A constant row has scale 0
and comes back exactly (with 4 bits, if its value is a bf16).

Wire form of a quantized row: its codes (one byte each for 8 bits, two codes a byte for 4 bits,
low nibble first), then ``scale`` and ``offset`` as raw bytes: ``quantized_width`` bytes in
all, in one ``uint8`` row, so a payload's size depends only on its shape. Sender and receiver
must share byte order, as the ranks of one job do. This is FBGEMM's fused row-wise layout
(codes, then scale and bias), the one TorchRec's INT8 comm codec sends.
"""

from __future__ import annotations

import torch
from torch import Tensor

SUPPORTED_BITS = (8, 4)


def _scale_dtype(bits: int) -> torch.dtype:
    """The type of a row's scale and offset."""
    return torch.float32 if bits == 8 else torch.bfloat16


def _scale_bytes(bits: int) -> int:
    return 2 * torch.empty(0, dtype=_scale_dtype(bits)).element_size()


def code_bytes(width: int, bits: int) -> int:
    """Bytes of a row's ``width`` codes at ``bits`` each."""
    return width if bits == 8 else (width + 1) // 2


def quantized_width(width: int, bits: int) -> int:
    """Bytes of one quantized row of ``width`` values: codes, scale, offset."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits={bits}: use one of {SUPPORTED_BITS}")
    return code_bytes(width, bits) + _scale_bytes(bits)


def quantize(rows: Tensor, bits: int, stochastic: bool = False) -> Tensor:
    """``rows`` ``[n, s]`` (float) as ``[n, quantized_width(s, bits)]`` bytes."""
    n, width = rows.shape
    levels = (1 << bits) - 1
    x = rows.float()
    kind = _scale_dtype(bits)
    low = _rounded(x.amin(dim=1, keepdim=True), kind, float("-inf"))
    scale = _rounded((x.amax(dim=1, keepdim=True) - low) / levels, kind, float("inf"))
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
    tail = torch.cat([scale, low], dim=1).to(kind).contiguous().view(torch.uint8)
    return torch.cat([codes, tail], dim=1)


def _rounded(x: Tensor, kind: torch.dtype, toward: float) -> Tensor:
    """``x`` (fp32) rounded to ``kind`` in the direction of ``toward``, back in fp32."""
    if kind == torch.float32:
        return x
    near = x.to(kind)
    wrong = (near.float() > x) if toward < 0 else (near.float() < x)
    away = torch.nextafter(near, torch.full_like(near, toward))
    return torch.where(wrong, away, near).float()


def dequantize(packed: Tensor, width: int, bits: int, dtype: torch.dtype) -> Tensor:
    """The ``[n, width]`` rows of ``dtype`` that ``quantize`` turned into ``packed``."""
    n = packed.shape[0]
    codes_end = code_bytes(width, bits)
    codes = packed[:, :codes_end]
    if bits == 4:
        codes = torch.stack([codes & 0x0F, codes >> 4], dim=2).reshape(n, 2 * codes_end)[:, :width]
    # A copy, not a view: the bytes may start at an offset a float cannot be read from.
    tail = packed[:, codes_end : codes_end + _scale_bytes(bits)].clone(
        memory_format=torch.contiguous_format
    )
    tail = tail.view(_scale_dtype(bits)).float()
    scale, low = tail[:, :1], tail[:, 1:]
    return (low + scale * codes.float()).to(dtype)
