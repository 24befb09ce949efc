"""Row codecs that send every value, in fewer bits: fp16/bf16 casts and row-wise int8/int4.

Unlike DCT-MP's top-k (``dct.comm.dct_mp``) these keep every activation and every gradient
entry, so each table's pooled vector and every dot product of the interaction survive, at a
precision the format bounds (``dct.compression.quantize``). A row may be split into equal
``segment`` s, each with its own scale and offset: with the embedding all-to-all, ``segment =
dim`` quantizes every table's pooled vector on its own scale (tables' value ranges differ by
orders of magnitude, ``granularity=table``). Forward and backward codecs are independent: no
context crosses between them.

Example::

    codecs = CodecPair(QuantizedRows(8, segment=16), QuantizedRows(8, 16, stochastic=True))
    spec = RowExchange(send_rows, recv_rows, widths, group=mp_group, meter=meter, codecs=codecs)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dct.compression.quantize import dequantize, quantize, quantized_width
from dct.compression.wire_dtype import to_wire


class CastRows:
    """Every value in a narrower float (``float16`` or ``bfloat16``), clamped to its range."""

    def __init__(self, value_dtype: torch.dtype) -> None:
        self.value_dtype = value_dtype

    def layout(self, width: int, dtype: torch.dtype) -> list[tuple[int, torch.dtype]]:
        return [(width, self.value_dtype)]

    def encode(self, rows: Tensor, ctx: Any) -> tuple[list[Tensor], None]:
        return [to_wire(rows, self.value_dtype)], None

    def decode(
        self, parts: list[Tensor], width: int, dtype: torch.dtype, ctx: Any
    ) -> tuple[Tensor, None]:
        return parts[0].to(dtype), None


class QuantizedRows:
    """Every value as a ``bits``-bit code with a scale and an offset per row (or ``segment``),
    rounded to the nearest code or, with ``stochastic``, at random without bias."""

    def __init__(self, bits: int, segment: int | None = None, stochastic: bool = False) -> None:
        quantized_width(1, bits)  # checks bits
        if segment is not None and segment < 1:
            raise ValueError(f"segment={segment} must be >= 1 (values per scale)")
        self.bits, self.segment, self.stochastic = bits, segment, stochastic

    def _split(self, width: int) -> tuple[int, int]:
        segment = self.segment or width
        if width % segment:
            raise ValueError(f"a row of {width} entries does not split into segments of {segment}")
        return width // segment, segment

    def layout(self, width: int, dtype: torch.dtype) -> list[tuple[int, torch.dtype]]:
        count, segment = self._split(width)
        return [(count * quantized_width(segment, self.bits), torch.uint8)]

    def encode(self, rows: Tensor, ctx: Any) -> tuple[list[Tensor], None]:
        n, width = rows.shape
        count, segment = self._split(width)
        packed = quantize(rows.reshape(n * count, segment), self.bits, self.stochastic)
        return [packed.reshape(n, count * packed.shape[1])], None

    def decode(
        self, parts: list[Tensor], width: int, dtype: torch.dtype, ctx: Any
    ) -> tuple[Tensor, None]:
        n = parts[0].shape[0]
        count, segment = self._split(width)
        packed = parts[0].reshape(n * count, quantized_width(segment, self.bits))
        return dequantize(packed, segment, self.bits, dtype).reshape(n, width), None
