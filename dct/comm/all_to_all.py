"""A differentiable, metered all-to-all of row blocks whose widths differ by source rank.

Rank ``r`` holds one tensor ``[sum(send_rows), width_r]`` whose rows are grouped by destination;
it receives from each source ``s`` a block ``[recv_rows[s], widths[s]]``. This is the embedding
exchange of hybrid DLRM: every rank pools its own tables for all samples of its model-parallel
group, and gets back every table's pooled vectors for its own samples. Gradients travel the
reverse way. A codec's wire parts (values, scales) go out together: one ``all_to_all_single``
a direction, each destination's parts laid end to end as bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from dct.comm.codec import DENSE, CodecPair
from dct.comm.meter import FP32_BYTES, ByteMeter


@dataclass(frozen=True)
class RowExchange:
    """Who sends how many rows to whom. ``widths[s]`` is the row width that rank ``s`` sends."""

    send_rows: Sequence[int]
    recv_rows: Sequence[int]
    widths: Sequence[int]
    group: dist.ProcessGroup
    meter: ByteMeter
    channel: str = "mp"
    codecs: CodecPair = DENSE
    reference: tuple[int, int] | None = None
    """Dense bytes of the forward and backward exchange these rows stand in for (distinct rows
    sent for many samples, ``dct.comm.dedup_all_to_all``); ``None``: these rows in fp32."""


Layout = list[tuple[int, torch.dtype]]


def exchange_parts(
    blocks: Sequence[Sequence[Tensor]],
    recv_rows: Sequence[int],
    recv_layouts: Sequence[Layout],
    group: dist.ProcessGroup,
) -> tuple[list[list[Tensor]], int]:
    """Send ``blocks[j][p]`` (part ``p`` for rank ``j``) to every rank, all parts in one
    collective: each destination's parts laid end to end as bytes.

    Source ``s`` sends ``recv_rows[s]`` rows of each part laid out as ``recv_layouts[s]``.
    Returns, per source, its parts as ``[rows, cols]``, and the bytes this rank sent to others.
    """
    me = dist.get_rank(group)
    in_splits = [sum(t.numel() * t.element_size() for t in per_dest) for per_dest in blocks]
    part_bytes = [
        [rows * cols * dtype.itemsize for cols, dtype in layout]
        for rows, layout in zip(recv_rows, recv_layouts)
    ]
    out_splits = [sum(sizes) for sizes in part_bytes]
    flat = torch.cat([_as_bytes(t) for per_dest in blocks for t in per_dest])
    out = torch.empty(sum(out_splits), dtype=torch.uint8, device=flat.device)
    dist.all_to_all_single(out, flat, out_splits, in_splits, group=group)
    received: list[list[Tensor]] = []
    for s, chunk in enumerate(out.split(out_splits)):
        parts = zip(chunk.split(part_bytes[s]), recv_layouts[s])
        received.append(
            [_from_bytes(b, dtype).view(recv_rows[s], cols) for b, (cols, dtype) in parts]
        )
    return received, sum(n for j, n in enumerate(in_splits) if j != me)


def _as_bytes(tensor: Tensor) -> Tensor:
    return tensor.contiguous().reshape(-1).view(torch.uint8)


def _from_bytes(data: Tensor, dtype: torch.dtype) -> Tensor:
    """``data`` (bytes) read as ``dtype``; a copy where it starts off ``dtype``'s alignment."""
    if data.data_ptr() % dtype.itemsize:
        data = data.clone()
    return data.view(dtype)


def _dense_bytes(rows: Sequence[int], widths: Sequence[int], me: int) -> int:
    """What an fp32 exchange of blocks ``[rows[j], widths[j]]`` hands to the other ranks."""
    return FP32_BYTES * sum(r * w for j, (r, w) in enumerate(zip(rows, widths)) if j != me)


def _reference(spec: RowExchange, direction: int, dense: int) -> int:
    return dense if spec.reference is None else spec.reference[direction]


class _AllToAllRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, rows: Tensor, spec: RowExchange) -> tuple[Tensor, ...]:
        group, codecs = spec.group, spec.codecs
        me = dist.get_rank(group)
        parts, sender_ctx = codecs.forward.encode(rows, None)
        layouts = [codecs.forward.layout(w, rows.dtype) for w in spec.widths]
        blocks = list(zip(*(part.split(list(spec.send_rows)) for part in parts)))
        received, sent = exchange_parts(blocks, spec.recv_rows, layouts, group)
        width = rows.shape[1]
        dense = _dense_bytes(spec.send_rows, [width] * len(spec.send_rows), me)
        spec.meter.record(spec.channel, sent, _reference(spec, 0, dense), part="forward")
        decoded = [
            codecs.forward.decode(parts, w, rows.dtype, None)
            for parts, w in zip(received, spec.widths)
        ]
        ctx.spec, ctx.sender_ctx = spec, sender_ctx
        ctx.receiver_ctxs = [receiver_ctx for _, receiver_ctx in decoded]
        ctx.width, ctx.dtype, ctx.device = width, rows.dtype, rows.device
        return tuple(block for block, _ in decoded)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor, None]:
        spec: RowExchange = ctx.spec
        codec = spec.codecs.backward
        me = dist.get_rank(spec.group)
        grads = tuple(
            torch.zeros(rows, width, dtype=ctx.dtype, device=ctx.device) if g is None else g
            for g, rows, width in zip(grads, spec.recv_rows, spec.widths)
        )
        encoded = [codec.encode(g, rctx)[0] for g, rctx in zip(grads, ctx.receiver_ctxs)]
        layout = codec.layout(ctx.width, ctx.dtype)
        received, sent = exchange_parts(
            encoded, spec.send_rows, [layout] * len(spec.send_rows), spec.group
        )
        dense = _dense_bytes(spec.recv_rows, spec.widths, me)
        spec.meter.record(spec.channel, sent, _reference(spec, 1, dense), part="backward")
        joined = [torch.cat(per_part, dim=0) for per_part in zip(*received)]
        grad_rows, _ = codec.decode(joined, ctx.width, ctx.dtype, ctx.sender_ctx)
        return grad_rows, None


def all_to_all_rows(rows: Tensor, spec: RowExchange) -> tuple[Tensor, ...]:
    """Exchange row blocks as ``spec`` says; differentiable. Returns one block per source rank.

    A group of one rank returns ``rows`` itself, untouched and unmetered.

    Example::

        spec = RowExchange([b, b], [b, b], widths=[48, 32], group=mp_group, meter=meter)
        blocks = all_to_all_rows(pooled, spec)   # pooled: [2 * b, own width]
        embeddings = torch.cat(blocks, dim=1)    # [b, 80]: every rank's tables, own samples
    """
    if dist.get_world_size(spec.group) == 1:
        return (rows,)
    return _AllToAllRows.apply(rows, spec)
