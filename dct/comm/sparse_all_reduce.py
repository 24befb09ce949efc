"""Sum every rank's sparse contribution ``(positions, values)`` into a dense tensor.

Ranks select different numbers of entries, sometimes none, so a fixed-shape all-reduce cannot
carry them. One exchange is two collectives, always issued in the same order on every rank:

1. an all-gather of the counts (4 bytes a rank), waited for at once: every rank then knows every
   payload's size, and makes the same choice between the two forms below;
2. asynchronously, either the sparse payloads (values in their wire dtype, positions Elias-Fano
   coded) sent to every peer with one uneven ``all_to_all_single``, or, when that would hand more
   bytes to the network, a dense all-reduce of the same selected values: same sum, fewer bytes.

Only the second collective runs in the background, and it launches nothing from its callback,
so the order of collectives never depends on timing: no rank waits on a collective its peers
issued in another order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from dct.comm.meter import FP32_BYTES, ByteMeter, all_gather_bytes, ring_all_reduce_bytes
from dct.compression.positions import decode_positions, encode_positions, encoded_size

COUNT_BYTES = 4
# Handed the seconds an exchange spent packing or unpacking (a cost report).
Clock = Callable[[float], None]


@dataclass(frozen=True)
class SparseSum:
    """A started exchange: ``future`` resolves to the dense sum (the ``out`` tensor)."""

    future: torch.futures.Future[Tensor]
    dense_fallback: bool
    bytes_sent: int
    bytes_dense: int


def sparse_all_reduce(
    positions: Tensor,
    values: Tensor,
    out: Tensor,
    group: dist.ProcessGroup | None = None,
    meter: ByteMeter | None = None,
    channel: str = "dp",
    clock: Clock | None = None,
) -> SparseSum:
    """Start summing every rank's ``values`` at ``positions`` (sorted, flat) into ``out``.

    ``out`` (flat, same size on every rank) is overwritten with the sum over ranks; entries no
    rank selected are zero. The dense reference for the meter is an fp32 ring all-reduce of
    ``out``. Every rank must call this with the same ``out.numel()`` and ``values.dtype``.
    ``clock`` is handed the seconds spent packing and unpacking payloads.

    Example::

        exchange = sparse_all_reduce(positions, values.half(), torch.empty(numel), group)
        total = exchange.future.wait()
    """
    world = dist.get_world_size(group)
    numel = out.numel()
    counts = all_gather_counts(positions.numel(), group, out.device)
    payloads = [payload_bytes(c, values.dtype, numel) for c in counts]
    bytes_dense = ring_all_reduce_bytes(numel * FP32_BYTES, world)
    dense_form = ring_all_reduce_bytes(numel * out.element_size(), world)
    dense_fallback = sum(all_gather_bytes(p, world) for p in payloads) > world * dense_form
    if dense_fallback:
        out.zero_()
        out[positions] = values.to(out.dtype)
        work = dist.all_reduce(out, group=group, async_op=True)
        future = work.get_future().then(lambda _: out)
        sent = dense_form
    elif sum(counts) == 0:
        future = torch.futures.Future()
        future.set_result(out.zero_())
        sent = 0
    else:

        def scatter(pairs: torch.futures.Future) -> Tensor:
            started = time.perf_counter()
            out.zero_()
            for where, wire_values in pairs.value():
                out.index_add_(0, where, wire_values.to(out.dtype))
            if clock is not None:
                clock(time.perf_counter() - started)
            return out

        future = exchange_entries(positions, values, numel, counts, group, clock).then(scatter)
        sent = all_gather_bytes(payloads[dist.get_rank(group)], world)
    sent += all_gather_bytes(COUNT_BYTES, world)
    if meter is not None:
        meter.record(channel, sent, bytes_dense)
    return SparseSum(future, dense_fallback, sent, bytes_dense)


def all_gather_counts(
    count: int, group: dist.ProcessGroup | None, device: torch.device
) -> list[int]:
    """Every rank's ``count``, in group-rank order."""
    world = dist.get_world_size(group)
    gathered = torch.empty(world, dtype=torch.int32, device=device)
    mine = torch.tensor([count], dtype=torch.int32, device=device)
    dist.all_gather_single(gathered, mine, group=group)
    return gathered.tolist()


def payload_bytes(count: int, value_dtype: torch.dtype, universe: int) -> int:
    """A payload of ``count`` values and their Elias-Fano coded positions in ``[0, universe)``."""
    return count * value_dtype.itemsize + encoded_size(count, universe)


def exchange_entries(
    positions: Tensor,
    values: Tensor,
    universe: int,
    counts: list[int],
    group: dist.ProcessGroup | None,
    clock: Clock | None = None,
) -> torch.futures.Future[list[tuple[Tensor, Tensor]]]:
    """Send this rank's ``(positions, values)`` to every peer (one uneven ``all_to_all_single``);
    resolves to every rank's pair, in group-rank order. ``counts``: every rank's entry count;
    ``clock`` is handed the seconds spent packing, then unpacking."""
    world = len(counts)
    payloads = [payload_bytes(c, values.dtype, universe) for c in counts]
    started = time.perf_counter()
    mine = torch.cat([values.view(torch.uint8), encode_positions(positions, universe)])
    if clock is not None:
        clock(time.perf_counter() - started)
    received = torch.empty(sum(payloads), dtype=torch.uint8, device=values.device)
    work = dist.all_to_all_single(
        received, mine.repeat(world), payloads, [mine.numel()] * world, group=group, async_op=True
    )

    def decode(_: torch.futures.Future) -> list[tuple[Tensor, Tensor]]:
        started = time.perf_counter()
        pairs = []
        for segment, count in zip(torch.split(received, payloads), counts):
            if count == 0:
                pairs.append((positions[:0], values[:0]))
                continue
            value_bytes = count * values.element_size()
            # A copy: a view at an odd byte offset cannot be reinterpreted as wider values.
            wire_values = segment[:value_bytes].clone().view(values.dtype)
            pairs.append((decode_positions(segment[value_bytes:], count, universe), wire_values))
        if clock is not None:
            clock(time.perf_counter() - started)
        return pairs

    return work.get_future().then(decode)
