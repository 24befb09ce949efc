"""The embedding all-to-all with duplicates sent once: distinct vectors plus a sample index.

When samples bound for one rank pool the same ids in a table (every single-id feature repeats
its hot ids), the vector need cross the network once. Rank ``r`` sends each destination ``j``
its distinct vectors, table by table (``counts[j, t]`` of table ``t``, rows of ``dim``), and an
index ``[samples[j], tables]`` naming each sample's vector among them. The receiver rebuilds the
``[samples, tables * dim]`` block with an ``index_select``, whose backward sums the duplicates'
gradients before they are sent back: exactly the sum the table takes anyway. The distinct
vectors go through the codec pair like any row (``dct.comm.all_to_all``). The index follows
each destination's counts per table (``int32``): a table's column of it in the fewest bits that
number its distinct vectors (``dct.compression.bit_pack``; none when all samples share one); a
rank's index for its own samples stays where it is, unpacked.
Counts and index are metered as ``mp_index``. Dense bytes are those of the exchange it
replaces: every sample's row in fp32.

Example::

    sent = DedupRows(rows, index, counts)   # rows: [counts.sum(), dim], differentiable
    blocks = all_to_all_dedup(sent, samples=[b] * mp, tables=[2, 1], dim=16,
                                 group=mp_group, meter=meter, codecs=codecs)
    # blocks[s]: [b, tables[s] * 16], rank s's tables for this rank's samples
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from dct.comm.all_to_all import RowExchange, all_to_all_rows, exchange_parts
from dct.comm.codec import DENSE, CodecPair
from dct.comm.meter import FP32_BYTES, ByteMeter
from dct.compression.bit_pack import bits_for, pack_columns, packed_bytes, unpack_columns


@dataclass(frozen=True)
class DedupRows:
    """What one rank sends. ``rows``: ``[counts.sum(), dim]``, by destination then table;
    ``index``: ``[sum(samples), tables]``, each sample's vector numbered within its
    (destination, table); ``counts``: ``[destinations, tables]``."""

    rows: Tensor
    index: Tensor
    counts: Tensor


def expand(rows: Tensor, index: Tensor, counts: Tensor) -> Tensor:
    """Each sample's row per table, side by side: ``[samples, tables * dim]`` from ``rows``
    ``[counts.sum(), dim]`` (table by table) and ``index`` ``[samples, tables]``."""
    starts = counts.cumsum(0) - counts
    flat = (index.long() + starts).reshape(-1)
    return rows.index_select(0, flat).view(index.shape[0], index.shape[1] * rows.shape[1])


def all_to_all_dedup(
    sent: DedupRows,
    samples: Sequence[int],
    tables: Sequence[int],
    dim: int,
    group: dist.ProcessGroup,
    meter: ByteMeter,
    codecs: CodecPair = DENSE,
) -> tuple[Tensor, ...]:
    """Per source rank ``s``, its ``tables[s]`` vectors for each of this rank's samples,
    ``[samples[me], tables[s] * dim]``. Rank ``j`` of ``group`` holds ``samples[j]`` samples;
    differentiable with respect to ``sent.rows``."""
    me = dist.get_rank(group)
    mine = samples[me]
    counts = _exchange_counts(sent.counts, tables, group, meter)
    bits = [[bits_for(c) for c in table_counts.tolist()] for table_counts in counts]
    # This rank's own samples' index never crosses the network: it stays unpacked.
    indexes = list(sent.index.split(list(samples)))
    blocks = [
        [pack_columns(index, [bits_for(c) for c in sent.counts[j].tolist()]).view(1, -1)]
        if j != me
        else [index.new_empty(1, 0, dtype=torch.uint8)]
        for j, index in enumerate(indexes)
    ]
    layouts = [[(packed_bytes(mine, b) if s != me else 0, torch.uint8)] for s, b in enumerate(bits)]
    received, index_bytes = exchange_parts(blocks, [1] * len(tables), layouts, group)
    meter.record("mp", index_bytes, 0, part="index")
    for s, (parts, b) in enumerate(zip(received, bits)):
        if s != me:
            indexes[s] = unpack_columns(parts[0], mine, b)
    reference = (
        FP32_BYTES * dim * tables[me] * sum(n for j, n in enumerate(samples) if j != me),
        FP32_BYTES * dim * mine * sum(t for s, t in enumerate(tables) if s != me),
    )
    spec = RowExchange(
        send_rows=sent.counts.sum(1).tolist(),
        recv_rows=[int(c.sum()) for c in counts],
        widths=[dim] * len(tables),
        group=group,
        meter=meter,
        channel="mp",
        codecs=codecs,
        reference=reference,
    )
    arrived = all_to_all_rows(sent.rows, spec)
    return tuple(expand(r, i, c) for r, i, c in zip(arrived, indexes, counts))


def _exchange_counts(
    counts: Tensor, tables: Sequence[int], group: dist.ProcessGroup, meter: ByteMeter
) -> list[Tensor]:
    """Each source's distinct vectors per table for this rank (``int32`` on the wire, as bytes:
    collectives carry no narrower integers than that everywhere)."""
    blocks = [[c.to(torch.int32).contiguous().view(torch.uint8).view(1, -1)] for c in counts]
    layouts = [[(4 * t, torch.uint8)] for t in tables]
    received, sent_bytes = exchange_parts(blocks, [1] * len(tables), layouts, group)
    meter.record("mp", sent_bytes, 0, part="index")
    return [parts[0].reshape(-1).view(torch.int32).long() for parts in received]
