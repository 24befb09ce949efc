"""Reading and writing a run's state with ``torch.distributed.checkpoint`` (DCP).

Two things DCP's default planners lack, added here:

- **Row blocks** (``RowBlocks``): a table cut into arbitrary row ranges over ranks (the planner's
  row-wise blocks, or whole tables on one rank). DCP's ``DTensor`` expresses only even cuts
  over a device mesh and ``ShardedTensor`` is deprecated; a ``RowBlocks`` names the rows a rank
  holds of a ``[rows, ...]`` tensor, and DCP stores each block as a chunk of that one global
  tensor. Loading asks for whatever rows the reader holds now, so DCP reads the overlapping
  parts of the saved chunks: resharding on load, on any grid, or into one full tensor.
- **No arbitrary pickle on load**: non-tensor entries are unpickled with
  ``torch.load(weights_only=True)`` (DCP's planner uses ``weights_only=False``), so they must be
  built from tensors, numbers, strings, lists and dicts.

State dicts here are flat (``flatten_state_dict=False``): a key is a name, a value a tensor, a
``RowBlocks`` or a plain object.
"""

from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner, DefaultSavePlanner
from torch.distributed.checkpoint.metadata import (
    ChunkStorageMetadata,
    Metadata,
    MetadataIndex,
    TensorProperties,
)
from torch.distributed.checkpoint.planner import TensorWriteData, WriteItem, WriteItemType

METADATA_FILE = ".metadata"


@dataclass
class RowBlocks:
    """Rows ``starts[i] : starts[i] + len(blocks[i])`` of a ``size``-shaped tensor, held here.

    Saving writes the blocks (the rows of ``size`` not held by any rank make the save fail);
    loading fills them in place from whatever blocks were saved.

    Example::

        weights = RowBlocks([table.weight.detach()], [shard.start], (shard.table_rows, dim))
        save({"model/sparse_arch.tables.3.weight": weights}, path)
    """

    blocks: Sequence[torch.Tensor]
    starts: Sequence[int]
    global_size: Sequence[int]

    def size(self) -> torch.Size:
        return torch.Size(self.global_size)

    def _chunks(self) -> list[ChunkStorageMetadata]:
        return [
            ChunkStorageMetadata(
                offsets=torch.Size([start] + [0] * (len(self.global_size) - 1)),
                sizes=block.size(),
            )
            for block, start in zip(self.blocks, self.starts)
        ]

    # The three methods DCP's planners call on a checkpointable object.
    def __create_write_items__(self, fqn: str, obj: Any) -> list[WriteItem]:
        return [
            WriteItem(
                index=MetadataIndex(fqn, chunk.offsets),
                type=WriteItemType.SHARD,
                tensor_data=TensorWriteData(
                    chunk=chunk,
                    properties=TensorProperties.create_from_tensor(block),
                    size=self.size(),
                ),
            )
            for block, chunk in zip(self.blocks, self._chunks())
        ]

    def __create_chunk_list__(self) -> list[ChunkStorageMetadata]:
        return self._chunks()

    def __get_tensor_shard__(self, index: MetadataIndex) -> torch.Tensor:
        for block, chunk in zip(self.blocks, self._chunks()):
            if chunk.offsets == index.offset:
                return block
        raise ValueError(f"no block of {index.fqn} starts at {index.offset}")


def _lookup(state_dict: dict[str, Any], index: MetadataIndex) -> Any:
    obj = state_dict[index.fqn]
    if isinstance(obj, RowBlocks):
        return obj.__get_tensor_shard__(index)
    return obj


class _SavePlanner(DefaultSavePlanner):
    def __init__(self) -> None:
        # An entry several ranks hold (a replicated table's blocks, the tower) is written by the
        # lowest of them: replica 0, whatever other ranks hold.
        super().__init__(
            flatten_state_dict=False,
            flatten_sharded_tensors=False,
            dedup_save_to_lowest_rank=True,
        )

    def lookup_object(self, index: MetadataIndex) -> Any:
        return _lookup(self.state_dict, index)


class _LoadPlanner(DefaultLoadPlanner):
    def __init__(self) -> None:
        super().__init__(flatten_state_dict=False, flatten_sharded_tensors=False)

    def set_up_planner(self, state_dict: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        # DCP's set-up replaces objects it does not know (a RowBlocks) by None, in place.
        blocks = {k: v for k, v in state_dict.items() if isinstance(v, RowBlocks)}
        super().set_up_planner(state_dict, *args, **kwargs)
        state_dict.update(blocks)

    def lookup_tensor(self, index: MetadataIndex) -> torch.Tensor:
        return _lookup(self.state_dict, index)

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        self.state_dict[read_item.dest_index.fqn] = torch.load(value, weights_only=True)


@contextmanager
def _one_process_is_intended() -> Iterator[None]:
    """Without a process group DCP warns that it assumes one process: that is the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        yield


def save(state: dict[str, Any], path: Path) -> None:
    """Every rank writes its entries of ``state`` under ``path`` (entries several ranks hold
    are written once, by the lowest rank holding them); the metadata file is written last, by
    rank 0. Without a process group, this process alone writes."""
    with _one_process_is_intended():
        dcp.save(
            state,
            storage_writer=FileSystemWriter(path),
            planner=_SavePlanner(),
            no_dist=not dist.is_initialized(),
        )


def load(state: dict[str, Any], path: Path) -> None:
    """Fill ``state``'s tensors and row blocks in place from ``path``; its other entries
    (any placeholder value) are replaced by the saved objects. Without a process group, this
    process alone reads."""
    with _one_process_is_intended():
        dcp.load(
            state,
            storage_reader=FileSystemReader(path),
            planner=_LoadPlanner(),
            no_dist=not dist.is_initialized(),
        )


def read_metadata(path: Path) -> Metadata:
    """The saved entries' names, shapes and where their bytes lie."""
    return FileSystemReader(path).read_metadata()


def entry_size(metadata: Metadata, key: str) -> torch.Size | None:
    """The shape of tensor entry ``key``, ``None`` for an object."""
    return getattr(metadata.state_dict_metadata[key], "size", None)
