"""Average replicas' table gradients by exchanging only the rows each replica touched.

Each replica of a table touched its own rows: some, many or none. One exchange, for all of a
rank's tables at once, is two collectives, in the same order on every rank: an all-gather of the
row counts (4 bytes per table), then every rank's rows (32-bit ids, then values) sent to every
peer with one uneven ``all_to_all_single``. Every rank sums the same payloads in the same order,
so the replicas apply the identical gradient. The bytes are metered against themselves: this
uncompressed sparse exchange of the touched rows is the reference a table's compression is
judged by, not an all-reduce of the whole table, which no framework would send.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from dct.comm.meter import ByteMeter, all_gather_bytes
from dct.embedding.rows import RowGradient, coalesce

ID_BYTES = COUNT_BYTES = 4


def average_rows(
    grads: Sequence[RowGradient], group: dist.ProcessGroup, meter: ByteMeter, channel: str = "dp"
) -> list[RowGradient]:
    """Per table, the mean over ``group`` of every rank's gradient (rows no rank touched stay
    absent). Every rank passes its tables in the same order, with the same dim and dtype.

    Example::

        grads = average_rows([t.take_row_gradient() for t in tables], replica_group, meter)
    """
    world = dist.get_world_size(group)
    if world == 1 or not grads:
        return list(grads)
    device, dtype = grads[0].values.device, grads[0].values.dtype
    dim = grads[0].values.shape[1]
    mine_counts = torch.tensor([g.rows.numel() for g in grads], dtype=torch.int32, device=device)
    counts = torch.empty(world * len(grads), dtype=torch.int32, device=device)
    dist.all_gather_single(counts, mine_counts, group=group)
    counts = counts.view(world, len(grads))
    row_bytes = ID_BYTES + dim * dtype.itemsize
    mine = torch.cat(
        [torch.cat([g.rows for g in grads]).to(torch.int32).view(torch.uint8)]
        + [torch.cat([g.values for g in grads]).contiguous().view(torch.uint8).flatten()]
    )
    totals = (counts.sum(dim=1) * row_bytes).tolist()
    received = torch.empty(sum(totals), dtype=torch.uint8, device=device)
    dist.all_to_all_single(
        received, mine.repeat(world), totals, [mine.numel()] * world, group=group
    )
    sent = all_gather_bytes(mine.numel() + COUNT_BYTES * len(grads), world)
    meter.record(channel, sent, sent)
    per_table: list[tuple[list[Tensor], list[Tensor]]] = [([], []) for _ in grads]
    for segment, rank_counts in zip(received.split(totals), counts.tolist()):
        n = sum(rank_counts)
        # Copies: a view at an odd byte offset cannot be reinterpreted as wider numbers.
        ids = segment[: n * ID_BYTES].clone().view(torch.int32).long()
        values = segment[n * ID_BYTES :].clone().view(dtype).view(n, dim)
        for (rows, vals), i, v in zip(per_table, ids.split(rank_counts), values.split(rank_counts)):
            rows.append(i)
            vals.append(v)
    return [coalesce(torch.cat(r), torch.cat(v)).scale(1.0 / world) for r, v in per_table]
