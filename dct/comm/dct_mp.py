"""DCT-MP: a codec pair sending each sample's top-k activations, and gradients at their positions.

Forward, every row (one sample's activations for one destination) keeps its ``k`` largest
``|x|``, ``k = ceil(density * segment)``, re-selected every step; values and positions travel in
one byte buffer, and the receiver rebuilds the row with zeros elsewhere. Backward, the receiver
sends the gradient only at the positions it received, values alone: the sender kept its
positions. There is no error feedback: what a row drops is simply not seen downstream this step.

A row may be split into equal ``segment`` s, each keeping its own ``k``: with the embedding
all-to-all, ``segment = dim`` selects within every table's pooled vector (``granularity=table``),
no segment selects across all of a rank's tables for the sample (``granularity=sample``).

Plug the pair into any row exchange (``dct.comm.all_to_all``); the dense path is the identity pair
in the same code. Both codecs must be built with the same ``density`` and ``segment``.

Example::

    codecs = dct_mp_codecs(density=0.05, value_dtype=torch.float16)
    spec = RowExchange(send_rows, recv_rows, widths, group=mp_group, meter=meter, codecs=codecs)
    blocks = all_to_all_rows(pooled, spec)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dct.comm.codec import CodecPair
from dct.compression.hard_threshold import target_count
from dct.compression.row_top_k import (
    pack,
    packed_width,
    scatter_rows,
    top_k_positions,
    unpack,
)
from dct.compression.wire_dtype import to_wire


class _Segments:
    """Rows ``[n, width]`` seen as ``[n * width / segment, segment]``, each keeping ``k``."""

    def __init__(self, density: float, segment: int | None) -> None:
        if not 0.0 < density <= 1.0:
            raise ValueError(f"density={density} must be in (0, 1]: the fraction of entries kept")
        if segment is not None and segment < 1:
            raise ValueError(f"segment={segment} must be >= 1 (entries per selection)")
        self.density, self.segment = density, segment

    def shape(self, width: int) -> tuple[int, int, int]:
        """``(segments per row, segment width, k)`` for rows of ``width``."""
        segment = self.segment or width
        if width % segment:
            raise ValueError(f"a row of {width} entries does not split into segments of {segment}")
        return width // segment, segment, target_count(segment, self.density)


class KeptCounter:
    """Entries offered to and kept by a forward codec, for the kept fraction in reports.
    Forward passes run on the caller's thread, so plain counters suffice."""

    def __init__(self) -> None:
        self.offered = 0
        self.kept = 0

    def add(self, offered: int, kept: int) -> None:
        self.offered += offered
        self.kept += kept

    def state_dict(self) -> dict[str, int]:
        return {"offered": self.offered, "kept": self.kept}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.offered, self.kept = state["offered"], state["kept"]


class TopKRows:
    """Forward codec: per row (or segment) the ``k`` largest ``|x|``, as values and positions."""

    def __init__(
        self, density: float, value_dtype: torch.dtype, segment: int | None = None
    ) -> None:
        self.segments = _Segments(density, segment)
        self.value_dtype = value_dtype
        self.counter = KeptCounter()

    def layout(self, width: int, dtype: torch.dtype) -> list[tuple[int, torch.dtype]]:
        count, segment, k = self.segments.shape(width)
        return [(count * packed_width(k, segment, self.value_dtype), torch.uint8)]

    def encode(self, rows: Tensor, ctx: Any) -> tuple[list[Tensor], Tensor]:
        n, width = rows.shape
        count, segment, k = self.segments.shape(width)
        flat = rows.reshape(n * count, segment)
        positions = top_k_positions(flat, k)
        self.counter.add(flat.numel(), positions.numel())
        packed = pack(flat, positions, self.value_dtype)
        return [packed.reshape(n, count * packed.shape[1])], positions

    def decode(
        self, parts: list[Tensor], width: int, dtype: torch.dtype, ctx: Any
    ) -> tuple[Tensor, Tensor]:
        n = parts[0].shape[0]
        count, segment, k = self.segments.shape(width)
        per_segment = packed_width(k, segment, self.value_dtype)
        values, positions = unpack(
            parts[0].reshape(n * count, per_segment), k, segment, self.value_dtype
        )
        return scatter_rows(values.to(dtype), positions, segment).reshape(n, width), positions


class ValuesAtPositions:
    """Backward codec: gradient values only, at the positions the forward codec kept."""

    def __init__(
        self, density: float, value_dtype: torch.dtype, segment: int | None = None
    ) -> None:
        self.segments = _Segments(density, segment)
        self.value_dtype = value_dtype

    def layout(self, width: int, dtype: torch.dtype) -> list[tuple[int, torch.dtype]]:
        count, _, k = self.segments.shape(width)
        return [(count * k, self.value_dtype)]

    def encode(self, rows: Tensor, positions: Tensor) -> tuple[list[Tensor], None]:
        n, width = rows.shape
        count, segment, k = self.segments.shape(width)
        values = rows.reshape(n * count, segment).gather(1, positions)
        return [to_wire(values, self.value_dtype).reshape(n, count * k)], None

    def decode(
        self, parts: list[Tensor], width: int, dtype: torch.dtype, positions: Tensor
    ) -> tuple[Tensor, None]:
        n = parts[0].shape[0]
        count, segment, k = self.segments.shape(width)
        values = parts[0].reshape(n * count, k).to(dtype)
        return scatter_rows(values, positions, segment).reshape(n, width), None


def dct_mp_codecs(
    density: float,
    value_dtype: torch.dtype = torch.float32,
    grad_dtype: torch.dtype | None = None,
    segment: int | None = None,
) -> CodecPair:
    """The DCT-MP pair: top-k activations forward in ``value_dtype``, their gradients back in
    ``grad_dtype`` (default: ``value_dtype``), each row selected whole or per ``segment``."""
    return CodecPair(
        TopKRows(density, value_dtype, segment),
        ValuesAtPositions(density, value_dtype if grad_dtype is None else grad_dtype, segment),
    )
