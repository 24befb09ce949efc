"""The sending side of the de-duplicated embedding all-to-all (``dct.mp.dedup``).

A rank pools, per destination and table, only the distinct bags (``dct.compression.bag_dedup``)
and sends each vector once with a sample index (``dct.comm.dedup_all_to_all``). Its tables
pool all tables in one call, so every table is given as many bags per destination as the table
with the most distinct ones there; the extra bags are empty, pooled but never sent. All tables
are deduplicated in one pass (a block per table and destination): per-table loops of small
tensor ops cost more than the pooling itself.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from dct.comm.dct_mp import KeptCounter
from dct.comm.dedup_all_to_all import DedupRows
from dct.compression.bag_dedup import dedup_bags
from dct.data.batch import SparseFeatures


def pool_dedup(
    sparse: SparseFeatures,
    destinations: int,
    dim: int,
    pool: Callable[[SparseFeatures], Tensor],
    counter: KeptCounter | None = None,
    me: int = 0,
) -> DedupRows:
    """The distinct vectors of ``sparse`` (``destinations`` equal blocks of samples, tables as
    its columns) pooled by ``pool`` (``[bags, tables * dim]``), with their sample index.

    ``counter`` adds the rows bound for other ranks than ``me``: offered (one per sample and
    table) and sent (one per distinct vector)."""
    tables, samples = sparse.num_tables, sparse.num_samples
    values, offsets = _concatenated(sparse)
    found = dedup_bags(values, offsets, tables * destinations)
    by_block = found.counts
    counts = by_block.view(tables, destinations).T  # [destinations, tables]
    slots = counts.max(1).values
    slot_starts = slots.cumsum(0) - slots
    total = int(slots.sum())
    # Every representative's slot: table t's bags fill slots t * total + [0, total).
    block = _owner(by_block)
    table, destination = block // destinations, block % destinations
    within = _rank_within(by_block, block)
    reps = found.representatives
    lengths = offsets.diff().index_select(0, reps)
    slot_lengths = torch.zeros(tables * total, dtype=offsets.dtype, device=offsets.device)
    slot_lengths[table * total + slot_starts[destination] + within] = lengths
    taken = torch.arange(int(lengths.sum()), device=values.device)
    taken += torch.repeat_interleave(
        offsets.index_select(0, reps) - (lengths.cumsum(0) - lengths), lengths
    )
    bags = _split(values.index_select(0, taken), slot_lengths.view(tables, total))
    pooled = pool(bags).view(total * tables, dim)
    # Sent destination by destination, table by table.
    flat = counts.reshape(-1)
    pair = _owner(flat)
    row = slot_starts[pair // tables] + _rank_within(flat, pair)
    rows = pooled.index_select(0, row * tables + pair % tables)
    if counter is not None:
        others = torch.ones(destinations, dtype=torch.bool, device=counts.device)
        others[me] = False
        per_destination = samples // destinations
        counter.add(int(others.sum()) * per_destination * tables, int(counts[others].sum()))
    index = found.index.view(tables, samples).T
    return DedupRows(rows, index, counts)


def _concatenated(sparse: SparseFeatures) -> tuple[Tensor, Tensor]:
    """All tables' bags one after another, as one ``(values, offsets)``."""
    bases = [0]
    for vals in sparse.values[:-1]:
        bases.append(bases[-1] + vals.numel())
    tail = [offs[1:] + base for offs, base in zip(sparse.offsets, bases)]
    return torch.cat(sparse.values), torch.cat([sparse.offsets[0][:1] * 0, *tail])


def _split(values: Tensor, lengths: Tensor) -> SparseFeatures:
    """``values`` cut into one table per row of ``lengths`` (bag lengths)."""
    per_table = values.split(lengths.sum(1).tolist())
    zero = lengths.new_zeros(lengths.shape[0], 1)
    offsets = torch.cat([zero, lengths.cumsum(1)], dim=1)
    return SparseFeatures(tuple(per_table), tuple(offsets.unbind(0)))


def _owner(counts: Tensor) -> Tensor:
    """For ``counts.sum()`` items laid out group after group, each item's group."""
    return torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)


def _rank_within(counts: Tensor, owner: Tensor) -> Tensor:
    """For ``counts.sum()`` items laid out group after group (``owner``: each item's group, from
    ``_owner``), each item's place in its group."""
    starts = counts.cumsum(0) - counts
    return torch.arange(owner.numel(), device=counts.device) - starts[owner]
