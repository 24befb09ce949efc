"""A model wrapper's state dict: the single-process DLRM's names, tables as row blocks.

As TorchRec's ``DistributedModelParallel.state_dict()`` names sharded tables as the unsharded
model does, a wrapper's ``state_dict()`` holds every parameter under its ``models.dlrm.DLRM``
name and each table this rank holds rows of as one ``RowBlocks`` of the whole table, so a
checkpoint loads on any grid and exports without translation.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from dct.checkpoint.dcp_io import RowBlocks
from dct.parallel.sharding import Shard


def table_row_blocks(shards: Sequence[Shard], tensors: Sequence[Tensor]) -> dict[int, RowBlocks]:
    """Per table, the row blocks of ``tensors`` (one per shard, rows first) held here."""
    held: dict[int, list[tuple[Shard, Tensor]]] = defaultdict(list)
    for shard, tensor in zip(shards, tensors, strict=True):
        held[shard.table].append((shard, tensor))
    return {
        table: RowBlocks(
            [tensor for _, tensor in parts],
            [shard.start for shard, _ in parts],
            (parts[0][0].table_rows, *parts[0][1].shape[1:]),
        )
        for table, parts in held.items()
    }


def model_state_dict(
    dense: Sequence[tuple[str, nn.Parameter]], blocks: Sequence[tuple[Shard, Tensor]]
) -> dict[str, Any]:
    """The dense parameters by name and the tables' weights as row blocks, all sharing storage
    with the model (so that loading in place fills the model)."""
    state: dict[str, Any] = {name: param.detach() for name, param in dense}
    shards, weights = [s for s, _ in blocks], [w for _, w in blocks]
    for table, rows in table_row_blocks(shards, weights).items():
        state[f"sparse_arch.tables.{table}.weight"] = rows
    return state


def load_in_place(mine: dict[str, Any], saved: dict[str, Any]) -> None:
    """Copy ``saved`` into the tensors of ``mine`` (a state dict of the same keys) where it
    was not loaded into them in place already."""
    with torch.no_grad():
        for key, target in mine.items():
            source = saved[key]
            if isinstance(target, RowBlocks):
                pairs = zip(target.blocks, source.blocks, strict=True)
            else:
                pairs = [(target, source)]
            for dst, src in pairs:
                if dst.data_ptr() != src.data_ptr():
                    dst.copy_(src)
