"""Which bags of a batch pool the same ids, so their pooled vector can be sent once.

Bags are keyed by their ids, in order, never by pooled values: two bags with equal ids pool
bitwise-equal vectors (the same sum in the same order) and owe the table the same rows, while
value-equal vectors of different ids would wrongly share a gradient. Bags are deduplicated
within each block (the samples of one table going to one destination): ``block[i]`` names bag
``i``'s, one of ``groups``.

Example::

    # 2 destinations, 3 samples each, single-hot ids 5 5 7 | 7 7 7
    block = torch.tensor([0, 0, 0, 1, 1, 1])
    d = dedup_bags(torch.tensor([5, 5, 7, 7, 7, 7]), torch.arange(7), block, groups=2)
    d.counts          # tensor([2, 1]): destination 0 gets 2 distinct vectors, destination 1 one
    d.representatives # tensor([0, 2, 3]): the bags sent, block by block
    d.index           # tensor([0, 0, 1, 0, 0, 0]): each sample's vector among its block's
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class DedupBags:
    """``representatives``: one bag number per distinct bag, grouped by block (``counts[g]`` for
    block ``g``); ``index[i]``: bag ``i``'s distinct bag, numbered within its block."""

    representatives: Tensor
    index: Tensor
    counts: Tensor


def dedup_bags(values: Tensor, offsets: Tensor, block: Tensor, groups: int) -> DedupBags:
    """The distinct bags (equal ids in equal order) within each block of the bags
    ``values``/``offsets`` describe (``include_last_offset`` form, from 0); ``block``: each
    bag's block, ``0 .. groups - 1``."""
    n = offsets.numel() - 1
    if block.shape != (n,):
        raise ValueError(f"{n} bags given {tuple(block.shape)} block numbers")
    device = offsets.device
    if n == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return DedupBags(empty, empty, torch.zeros(groups, dtype=torch.long, device=device))
    keys = _keys(values, offsets, block)
    inverse, first = _group(_fold(keys))
    if keys.ndim == 2 and not torch.equal(
        keys, keys.index_select(0, first.index_select(0, inverse))
    ):
        inverse, first = _group(keys)  # two bags' hashes collided: compare whole rows
    # Keys sort by block first, so each block's distinct bags are consecutive.
    counts = torch.bincount(block.index_select(0, first), minlength=groups)
    starts = counts.cumsum(0) - counts
    return DedupBags(first, inverse - starts.index_select(0, block), counts)


def _group(keys: Tensor) -> tuple[Tensor, Tensor]:
    """Each key's number among the distinct keys (in sorted order), and each distinct key's
    first holder."""
    inverse = torch.unique(
        keys, sorted=True, return_inverse=True, dim=0 if keys.ndim == 2 else None
    )[1]
    n = inverse.numel()
    first = torch.full((int(inverse.max()) + 1,), n, dtype=torch.long, device=keys.device)
    return inverse, first.scatter_reduce_(0, inverse, torch.arange(n, device=keys.device), "amin")


def _fold(keys: Tensor) -> Tensor:
    """One number per key row that sorts by the block (column 0) first: the row itself if it is
    a number, else the block above a 40-bit polynomial hash of the rest (a flat unique is far
    faster than a row-wise one; a collision is caught by comparing the rows)."""
    if keys.ndim == 1:
        return keys
    hashed = torch.zeros(keys.shape[0], dtype=torch.long, device=keys.device)
    for column in keys[:, 1:].unbind(1):
        hashed = (hashed * _PRIME + column + 1) % _MODULUS
    return keys[:, 0] * _MODULUS + hashed


_PRIME, _MODULUS = 1_000_003, 1 << 40


def _keys(values: Tensor, offsets: Tensor, block: Tensor) -> Tensor:
    """One row per bag: its block, its length, then its ids padded with -1; a number per bag
    that sorts the same when no bag holds more than one id (every Criteo feature)."""
    lengths = offsets.diff()
    n = lengths.numel()
    width = int(lengths.max())
    if width <= 1:
        ids = torch.zeros(n, dtype=torch.long, device=offsets.device)
        ids.masked_scatter_(lengths == 1, values.long() + 1)
        return block * (int(ids.max()) + 1) + ids
    keys = torch.full((n, 2 + width), -1, dtype=torch.long, device=offsets.device)
    keys[:, 0], keys[:, 1] = block, lengths
    bags = torch.repeat_interleave(torch.arange(n, device=offsets.device), lengths)
    position = torch.arange(values.numel(), device=offsets.device) - offsets[:-1][bags]
    keys[bags, 2 + position] = values.long()
    return keys
