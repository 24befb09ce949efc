"""A recommender cut into consecutive stages at named layers, for pipeline-style model parallelism.

A model's dense part lists its forward pass as steps (``DenseArch.layers``, ``models.recommender``)
and names the steps a stage may end after: DLRM's ``bottom_mlp.1`` cuts after its bottom MLP's
second layer (after its ReLU), ``top_mlp.0`` after its top MLP's first. ``k`` cuts make ``k + 1``
stages of consecutive steps; the step that reads the pooled embeddings also pools the tables.
The stages share the model's modules, so running them one after the other is the model's
forward pass, operation for operation.

The first stage reads the dense features, the stage holding the tables reads the ids, and the
last stage returns logits; every other input is the previous stage's output. This file knows
nothing of processes: placing stages on ranks happens in ``dct.parallel.pipeline``.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from dct.data.batch import SparseFeatures
from models.recommender import Layer, Recommender
from models.sparse_arch import SparseArch


class CutError(ValueError):
    """Cut names that do not split the model; the message lists the valid ones."""


class _Pooling(nn.Module):
    """Pools the tables and hands them with the previous output to the step that reads them."""

    def __init__(self, sparse_arch: SparseArch, step: nn.Module) -> None:
        super().__init__()
        self.sparse_arch, self.step = sparse_arch, step

    def forward(self, x: Tensor, sparse: SparseFeatures) -> Tensor:
        return self.step(x, self.sparse_arch(sparse))


class Stage(nn.Module):
    """Consecutive steps of the forward pass.

    ``forward(incoming, dense, sparse)``: ``incoming`` is the previous stage's output (``None``
    for the first stage, which reads ``dense``); ``sparse`` is read only by the stage holding
    the tables (``reads_ids``). The last stage (``is_last``) returns logits ``[n]``; any
    other returns ``[n, out_width]``.
    """

    def __init__(self, steps: Sequence[Layer], is_first: bool, is_last: bool) -> None:
        super().__init__()
        self.pieces = nn.ModuleList(step.module for step in steps)
        self.is_first, self.is_last = is_first, is_last
        self.reads_ids = any(isinstance(piece, _Pooling) for piece in self.pieces)
        self.out_width = None if is_last else steps[-1].width

    def forward(
        self, incoming: Tensor | None, dense: Tensor | None, sparse: SparseFeatures | None
    ) -> Tensor:
        x = dense if self.is_first else incoming
        for piece in self.pieces:
            x = piece(x, sparse) if isinstance(piece, _Pooling) else piece(x)
        return x.squeeze(1) if self.is_last else x


def cut_names(model: Recommender) -> list[str]:
    """Every valid cut, in forward order (never after the final step: nothing would follow)."""
    return [step.cut for step in model.dense_tower.layers()[:-1] if step.cut is not None]


def split_model(model: Recommender, cuts: Sequence[str]) -> list[Stage]:
    """The ``len(cuts) + 1`` stages of ``model`` cut at ``cuts`` (any order, no repeats).

    Example::

        stages = split_model(DLRM(13, [512, 256, 64, 16], sizes, [512, 256], seed=0),
                             ["bottom_mlp.1", "top_mlp.1"])
    """
    valid = cut_names(model)
    unknown = [cut for cut in cuts if cut not in valid]
    if unknown:
        raise CutError(f"unknown cut(s) {unknown}: this model can be cut at {valid}")
    if len(set(cuts)) != len(cuts):
        raise CutError(f"cuts {list(cuts)} name a layer twice")
    steps = [
        Layer(_Pooling(model.sparse_arch, step.module), step.width, step.cut)
        if step.reads_embeddings
        else step
        for step in model.dense_tower.layers()
    ]
    ends = sorted(i for i, step in enumerate(steps) if step.cut in cuts)
    bounds = [0, *(end + 1 for end in ends), len(steps)]
    return [
        Stage(steps[start:stop], is_first=i == 0, is_last=i == len(bounds) - 2)
        for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:]))
    ]
