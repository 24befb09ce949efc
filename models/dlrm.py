"""DLRM (Naumov et al., 2019): bottom MLP, pairwise dot interaction, top MLP.

The dense features go through the bottom MLP to one vector as wide as an embedding; that vector
and every feature's pooled embedding form all pairwise dot products, which the top MLP (with
the bottom output) turns into a logit. ``DenseTower`` is that dense part; ``DLRM`` adds the
tables (``models.sparse_arch``). Where it may be cut: after any bottom or top MLP layer but the
last (``bottom_mlp.<i>``, ``top_mlp.<j>``, 0-based).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from models.feature_tables import FeatureTables
from models.mlp import dense_generator, linear_blocks, mlp
from models.recommender import DenseArch, Layer, Recommender
from models.sparse_arch import SparseArch


class DotInteraction(nn.Module):
    """The bottom MLP's output concatenated with all pairwise dot products of the features."""

    def forward(self, dense: Tensor, pooled: Tensor) -> Tensor:
        features = torch.cat([dense.unsqueeze(1), pooled], dim=1)
        dots = torch.bmm(features, features.transpose(1, 2))
        n = features.shape[1]
        rows, cols = torch.tril_indices(n, n, offset=-1, device=dots.device)
        return torch.cat([dense, dots[:, rows, cols]], dim=1)


def mlp_layers(name: str, blocks: nn.Sequential, last_cut: bool = True) -> list[Layer]:
    """``blocks``' linear layers as steps cut as ``name.<i>`` (the last too if ``last_cut``)."""
    steps = linear_blocks(blocks)
    return [
        Layer(step, step[0].out_features, f"{name}.{i}" if last_cut or i < len(steps) - 1 else None)
        for i, step in enumerate(steps)
    ]


class DenseTower(DenseArch):
    """DLRM's dense part: bottom MLP, dot interaction, top MLP down to one logit."""

    def __init__(
        self,
        num_dense: int,
        bottom_mlp: Sequence[int],
        num_features: int,
        top_mlp: Sequence[int],
        seed: int,
    ) -> None:
        super().__init__()
        generator = dense_generator(seed)
        dim = bottom_mlp[-1]
        interaction_width = dim + (num_features + 1) * num_features // 2
        self.bottom_mlp = mlp([num_dense, *bottom_mlp], generator, last_relu=True)
        self.interaction = DotInteraction()
        self.top_mlp = mlp([interaction_width, *top_mlp, 1], generator, last_relu=False)
        self._interaction_width = interaction_width

    def forward(self, dense: Tensor, pooled: Tensor) -> Tensor:
        """Logits ``[n]`` from dense features ``[n, num_dense]`` and pooled embeddings."""
        interacted = self.interaction(self.bottom_mlp(dense), pooled)
        return self.top_mlp(interacted).squeeze(1)

    def layers(self) -> list[Layer]:
        return [
            *mlp_layers("bottom_mlp", self.bottom_mlp),
            Layer(self.interaction, self._interaction_width, reads_embeddings=True),
            *mlp_layers("top_mlp", self.top_mlp, last_cut=False),
        ]


class DLRM(Recommender):
    """Single-process DLRM: ``DLRM(...)(batch)`` returns one click logit per sample. A table
    per feature, bags summed, unless ``features`` says otherwise (then ``table_sizes`` must be
    its ``table_sizes``).

    Example::

        model = DLRM(13, [64, 16], [1000] * 26, [64, 32], seed=0)
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch.labels)
    """

    def __init__(
        self,
        num_dense: int,
        bottom_mlp: Sequence[int],
        table_sizes: Sequence[int],
        top_mlp: Sequence[int],
        seed: int,
        features: FeatureTables | None = None,
    ) -> None:
        if features is None:
            features = FeatureTables.one_per_feature(table_sizes)
        if list(features.table_sizes) != list(table_sizes):
            raise ValueError(f"table sizes {list(table_sizes)} are not {features.table_sizes}")
        super().__init__(
            SparseArch(features, bottom_mlp[-1], seed),
            DenseTower(num_dense, bottom_mlp, features.num_features, top_mlp, seed),
        )
