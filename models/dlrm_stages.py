"""DLRM cut into consecutive stages at named layers, for pipeline-style model parallelism.

A cut is named by the MLP and the 0-based index of a linear layer in it: ``bottom_mlp.1`` cuts
after the bottom MLP's second layer (after its ReLU), ``top_mlp.0`` after the top MLP's first.
The forward pass is a sequence of pieces — the bottom MLP's layers, the interaction (which
also pools the tables), the top MLP's layers — and ``k`` cuts make ``k + 1`` stages of
consecutive pieces. The stages share the DLRM's modules, so running them one after the other
is the DLRM's forward pass, operation for operation.

The first stage reads the dense features, the stage holding the interaction reads the ids, and
the last stage returns logits; every other input is the previous stage's output. This file
knows nothing of processes: placing stages on ranks happens in ``dct.parallel.pipeline``.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from dct.data.batch import SparseFeatures
from models.dlrm import DLRM

MLPS = ("bottom_mlp", "top_mlp")


class CutError(ValueError):
    """Cut names that do not split the model; the message lists the valid ones."""


def _layers(mlp: nn.Sequential) -> list[nn.Sequential]:
    """Each linear layer with the activation that follows it, if any."""
    blocks: list[list[nn.Module]] = []
    for module in mlp:
        if isinstance(module, nn.Linear):
            blocks.append([])
        blocks[-1].append(module)
    return [nn.Sequential(*block) for block in blocks]


class _Interaction(nn.Module):
    """Pools the tables and forms the dot interaction with the bottom MLP's output."""

    def __init__(self, model: DLRM) -> None:
        super().__init__()
        self.sparse_arch = model.sparse_arch
        self.interaction = model.dense_tower.interaction

    def forward(self, dense_out: Tensor, sparse: SparseFeatures) -> Tensor:
        return self.interaction(dense_out, self.sparse_arch(sparse))


class Stage(nn.Module):
    """Consecutive pieces of the forward pass.

    ``forward(incoming, dense, sparse)``: ``incoming`` is the previous stage's output (``None``
    for the first stage, which reads ``dense``); ``sparse`` is read only by the stage holding
    the interaction (``reads_ids``). The last stage (``is_last``) returns logits ``[n]``; any
    other returns ``[n, out_width]``.
    """

    def __init__(self, pieces: Sequence[nn.Module], is_first: bool, is_last: bool) -> None:
        super().__init__()
        self.pieces = nn.ModuleList(pieces)
        self.is_first, self.is_last = is_first, is_last
        self.reads_ids = any(isinstance(piece, _Interaction) for piece in pieces)
        # A stage other than the last ends at a cut, which follows a linear layer.
        self.out_width = None if is_last else pieces[-1][0].out_features

    def forward(
        self, incoming: Tensor | None, dense: Tensor | None, sparse: SparseFeatures | None
    ) -> Tensor:
        x = dense if self.is_first else incoming
        for piece in self.pieces:
            x = piece(x, sparse) if isinstance(piece, _Interaction) else piece(x)
        return x.squeeze(1) if self.is_last else x


def cut_names(model: DLRM) -> list[str]:
    """Every valid cut, in forward order (not after the final layer: nothing would follow)."""
    bottom = len(_layers(model.dense_tower.bottom_mlp))
    top = len(_layers(model.dense_tower.top_mlp))
    return [f"bottom_mlp.{i}" for i in range(bottom)] + [f"top_mlp.{i}" for i in range(top - 1)]


def split_dlrm(model: DLRM, cuts: Sequence[str]) -> list[Stage]:
    """The ``len(cuts) + 1`` stages of ``model`` cut at ``cuts`` (any order, no repeats).

    Example::

        stages = split_dlrm(DLRM(13, [512, 256, 64, 16], sizes, [512, 256], seed=0),
                            ["bottom_mlp.1", "top_mlp.1"])
    """
    valid = cut_names(model)
    unknown = [cut for cut in cuts if cut not in valid]
    if unknown:
        raise CutError(f"unknown cut(s) {unknown}: this model can be cut at {valid}")
    if len(set(cuts)) != len(cuts):
        raise CutError(f"cuts {list(cuts)} name a layer twice")
    tower = model.dense_tower
    pieces: list[nn.Module] = [
        *_layers(tower.bottom_mlp),
        _Interaction(model),
        *_layers(tower.top_mlp),
    ]
    # A cut after piece p ends a stage there; bottom layer i is piece i, top layer j is piece
    # (bottom layers + 1 + j).
    bottom = len(_layers(tower.bottom_mlp))
    ends = sorted(
        int(index) if mlp == "bottom_mlp" else bottom + 1 + int(index)
        for mlp, index in (cut.split(".") for cut in cuts)
    )
    bounds = [0, *(end + 1 for end in ends), len(pieces)]
    return [
        Stage(pieces[start:stop], is_first=i == 0, is_last=i == len(bounds) - 2)
        for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:]))
    ]
