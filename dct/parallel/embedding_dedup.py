"""The sending side of the de-duplicated embedding all-to-all (``dct.mp.dedup``).

A rank pools every bag of its tables in one call, as the plain exchange does, finds per
destination and table the distinct bags (``dct.compression.bag_dedup``, one pass over all
tables, a block per destination and table) and sends each distinct vector once with a sample
index (``dct.comm.dedup_all_to_all``). A duplicate's vector is taken from the pooled rows and
never sent; its gradient is zero, so the tables receive exactly what sending every row gives.
Pooling only the distinct bags would save pooling work but costs more in gathering and
regrouping their ids than fused pooling of all bags does.
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
    tables, samples = sparse.num_features, sparse.num_samples
    if samples % destinations:
        raise ValueError(f"{samples} samples do not split among {destinations} destinations")
    values, offsets = sparse.concatenated()
    # Bag t * samples + s is sample s of table t; blocks are numbered destination by
    # destination, so the distinct bags come out in the order they are sent.
    device = offsets.device
    table = torch.arange(tables, device=device).unsqueeze(1)
    destination = torch.arange(destinations, device=device).repeat_interleave(
        samples // destinations
    )
    block = (destination * tables + table).reshape(-1)
    found = dedup_bags(values, offsets, block, destinations * tables)
    counts = found.counts.view(destinations, tables)
    # Bag t * samples + s pooled into row s * tables + t of the pooled rows.
    pooled_row = (torch.arange(samples, device=device) * tables + table).reshape(-1)
    pooled = pool(sparse).reshape(samples * tables, dim)
    rows = pooled.index_select(0, pooled_row.index_select(0, found.representatives))
    if counter is not None:
        others = torch.ones(destinations, dtype=torch.bool, device=counts.device)
        others[me] = False
        per_destination = samples // destinations
        counter.add(int(others.sum()) * per_destination * tables, int(counts[others].sum()))
    index = found.index.view(tables, samples).T
    return DedupRows(rows, index, counts)
