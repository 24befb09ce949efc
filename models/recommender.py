"""What a recommender is to dct: a sparse part, a dense part, and where the dense part is cut.

Every model in ``models/`` is a ``Recommender``:

- ``sparse_arch``, a ``models.sparse_arch.SparseArch``: the tables (which feature looks up which
  table, each table's rows, one embedding width) and their pooling. Embedding mode shards it
  over the model-parallel ranks (``dct.parallel.hybrid``); nothing else of a model is sharded.
- ``dense_tower``, a ``DenseArch``: the dense features ``[n, num_dense]`` and the pooled
  embeddings ``[n, num_features, dim]`` in, one logit per sample out. Embedding mode replicates
  it under DDP; pipeline mode cuts it into stages.

A ``DenseArch`` also lists its forward pass as ``layers()``: consecutive steps, the one step
that reads the pooled embeddings marked, each step that may end a pipeline stage named. Running
the steps in order is its forward pass, operation for operation (each model's tests check it),
so a pipeline of its stages computes what the single-process model does
(``models.stages``). Which model a config names is ``models.zoo``'s business; how a model is
wrapped for a grid is ``dct.parallel``'s. A model knows nothing of processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from dct.data.batch import Batch
from models.sparse_arch import SparseArch


@dataclass(frozen=True)
class Layer:
    """One step of a dense part's forward pass.

    ``module(x)`` maps the previous step's output ``[n, in]`` (the first step: the dense
    features) to ``[n, width]``; the step ``reads_embeddings`` is called ``module(x, pooled)``.
    ``cut``: the name under which a pipeline may end a stage after this step (``None``: it may
    not; never the last step's). The last step's output is ``[n, 1]``, the logits.
    """

    module: nn.Module
    width: int
    cut: str | None = None
    reads_embeddings: bool = False


class DenseArch(nn.Module):
    """Everything of a model but its tables: ``forward(dense, pooled)`` returns logits ``[n]``,
    and ``layers()`` the same computation as ``Layer`` steps (sharing this module's modules)."""

    def layers(self) -> list[Layer]:
        raise NotImplementedError

    def forward(self, dense: Tensor, pooled: Tensor) -> Tensor:
        raise NotImplementedError


class Recommender(nn.Module):
    """A single-process click model: ``model(batch)`` returns one logit per sample.

    Its parameters' names (``sparse_arch.tables.<t>.weight``, ``dense_tower.<...>``) are what
    checkpoints, ``dct-export`` and ``dct-predict`` call them, whatever grid trained it.
    """

    def __init__(self, sparse_arch: SparseArch, dense_tower: DenseArch) -> None:
        super().__init__()
        self.sparse_arch = sparse_arch
        self.dense_tower = dense_tower

    def forward(self, batch: Batch) -> Tensor:
        return self.dense_tower(batch.dense, self.sparse_arch(batch.sparse))
