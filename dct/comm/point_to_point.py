"""Metered point-to-point transfer of row blocks through a codec: a pipeline's cut activations.

The sender encodes rows ``[n, width]`` into wire parts and sends each; the receiver, knowing
``n``, ``width`` and the codec's layout, receives into buffers of exactly that size (codec
payloads are static) and decodes. Each side gets back its codec context, so the gradients can
take the reverse way through the backward codec: a DCT-MP pair sends top-k activations forward
and gradients only at those positions back. The sender meters what it hands to the network on
``channel``, against the rows in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from dct.comm.codec import RowCodec
from dct.comm.meter import FP32_BYTES, ByteMeter


@dataclass(frozen=True)
class Link:
    """One direction between two ranks of ``group`` (ranks as numbered in ``group``)."""

    peer: int
    group: dist.ProcessGroup
    meter: ByteMeter
    channel: str = "mp"


def send_rows(rows: Tensor, codec: RowCodec, ctx: Any, link: Link, part: str) -> Any:
    """Send ``rows`` encoded by ``codec`` to ``link.peer``, metered as ``part`` of the
    channel (``forward`` activations, ``backward`` gradients); returns the sender's context."""
    parts, sender_ctx = codec.encode(rows, ctx)
    sent = 0
    for wire in parts:
        wire = wire.contiguous()
        dist.send(wire, group=link.group, group_dst=link.peer)
        sent += wire.numel() * wire.element_size()
    link.meter.record(link.channel, sent, FP32_BYTES * rows.numel(), part)
    return sender_ctx


def recv_rows(
    n: int,
    width: int,
    dtype: torch.dtype,
    codec: RowCodec,
    ctx: Any,
    link: Link,
    device: torch.device,
) -> tuple[Tensor, Any]:
    """Receive ``n`` rows of ``width`` from ``link.peer`` sent through ``codec``; decoded rows
    and the receiver's context."""
    parts = []
    for cols, part_dtype in codec.layout(width, dtype):
        buffer = torch.empty(n, cols, dtype=part_dtype, device=device)
        dist.recv(buffer, group=link.group, group_src=link.peer)
        parts.append(buffer)
    return codec.decode(parts, width, dtype, ctx)
