"""The seam where a compressed transfer plugs into a collective: a codec pair.

A row codec turns a block of rows ``[rows, width]`` into wire parts, each ``[rows, cols_i]`` so
that every part splits across ranks by the same row counts, and back. Its ``ctx`` threads what
one direction must remember for the other: a top-k codec's forward encode returns the positions it
kept, and the backward codec reuses them to send gradients at exactly those positions. The dense
path is ``IDENTITY``: one part, the rows themselves, so compressed and dense runs share all code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor


class RowCodec(Protocol):
    def layout(self, width: int, dtype: torch.dtype) -> list[tuple[int, torch.dtype]]:
        """Columns and dtype of each wire part for rows of ``width`` values of ``dtype``."""

    def encode(self, rows: Tensor, ctx: Any) -> tuple[list[Tensor], Any]:
        """Wire parts for ``rows``, and what this side keeps for the opposite direction."""

    def decode(
        self, parts: list[Tensor], width: int, dtype: torch.dtype, ctx: Any
    ) -> tuple[Tensor, Any]:
        """Rows ``[rows, width]`` rebuilt from wire parts, and what this side keeps."""


class IdentityCodec:
    """Sends rows as they are."""

    def layout(self, width: int, dtype: torch.dtype) -> list[tuple[int, torch.dtype]]:
        return [(width, dtype)]

    def encode(self, rows: Tensor, ctx: Any) -> tuple[list[Tensor], Any]:
        return [rows], None

    def decode(
        self, parts: list[Tensor], width: int, dtype: torch.dtype, ctx: Any
    ) -> tuple[Tensor, Any]:
        return parts[0], None


@dataclass(frozen=True)
class CodecPair:
    """``forward`` encodes activations; ``backward`` encodes their gradients on the way back."""

    forward: RowCodec
    backward: RowCodec


IDENTITY = IdentityCodec()
DENSE = CodecPair(IDENTITY, IDENTITY)
