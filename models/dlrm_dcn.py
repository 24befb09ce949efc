"""DLRM-DCNv2 (Wang et al., 2021), the recommender MLPerf Training benchmarks since v3.0.

DLRM with its dot interaction replaced by a stack of low-rank cross layers. The bottom MLP
turns the dense features into one vector as wide as an embedding; that vector and every
feature's pooled embedding are concatenated into ``x_0`` (``(num_features + 1) * dim`` wide);
each cross layer ``l`` computes::

    x_{l+1} = x_0 * (U_l (V_l x_l) + b_l) + x_l

with ``V_l`` down to ``cross_rank`` columns and ``U_l`` back up (``*`` is elementwise); the top
MLP turns the last ``x_L`` into a logit. This is the interaction of MLPerf's reference (TorchRec's
``DLRM_DCN`` with its ``LowRankCrossNet``). Where it may be cut: after any bottom or top MLP
layer but the last (``bottom_mlp.<i>``, ``top_mlp.<j>``); the cross stack stays in one stage,
as every cross layer reads ``x_0``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from models.dlrm import mlp_layers
from models.mlp import dense_generator, mlp
from models.recommender import DenseArch, Layer


class LowRankCross(nn.Module):
    """``layers`` low-rank cross layers on ``width`` columns: ``down[l]`` is ``V_l`` (no
    bias), ``up[l]`` is ``U_l`` with bias ``b_l``. Weights Xavier-normal from ``generator``,
    biases zero, as MLPerf's reference initialises them."""

    def __init__(self, width: int, layers: int, rank: int, generator: torch.Generator) -> None:
        super().__init__()
        self.down = nn.ModuleList(nn.Linear(width, rank, bias=False) for _ in range(layers))
        self.up = nn.ModuleList(nn.Linear(rank, width) for _ in range(layers))
        with torch.no_grad():
            for down, up in zip(self.down, self.up):
                std = math.sqrt(2.0 / (width + rank))
                down.weight.normal_(0.0, std, generator=generator)
                up.weight.normal_(0.0, std, generator=generator)
                up.bias.zero_()

    def forward(self, x0: Tensor) -> Tensor:
        x = x0
        for down, up in zip(self.down, self.up):
            x = x0 * up(down(x)) + x
        return x


class CrossInteraction(nn.Module):
    """The bottom MLP's output and the pooled embeddings concatenated, through the cross stack."""

    def __init__(self, width: int, layers: int, rank: int, generator: torch.Generator) -> None:
        super().__init__()
        self.cross = LowRankCross(width, layers, rank, generator)

    def forward(self, dense: Tensor, pooled: Tensor) -> Tensor:
        return self.cross(torch.cat([dense, pooled.flatten(1)], dim=1))


class DCNTower(DenseArch):
    """DLRM-DCNv2's dense part: bottom MLP, ``cross_layers`` low-rank cross layers of rank
    ``cross_rank``, top MLP down to one logit.

    Example::

        tower = DCNTower(13, [512, 256, 128], 26, [1024, 1024, 512, 256], 3, 512, seed=0)
    """

    def __init__(
        self,
        num_dense: int,
        bottom_mlp: Sequence[int],
        num_features: int,
        top_mlp: Sequence[int],
        cross_layers: int,
        cross_rank: int,
        seed: int,
    ) -> None:
        super().__init__()
        generator = dense_generator(seed)
        self._width = (num_features + 1) * bottom_mlp[-1]
        self.bottom_mlp = mlp([num_dense, *bottom_mlp], generator, last_relu=True)
        self.interaction = CrossInteraction(self._width, cross_layers, cross_rank, generator)
        self.top_mlp = mlp([self._width, *top_mlp, 1], generator, last_relu=False)

    def forward(self, dense: Tensor, pooled: Tensor) -> Tensor:
        """Logits ``[n]`` from dense features ``[n, num_dense]`` and pooled embeddings."""
        return self.top_mlp(self.interaction(self.bottom_mlp(dense), pooled)).squeeze(1)

    def layers(self) -> list[Layer]:
        return [
            *mlp_layers("bottom_mlp", self.bottom_mlp),
            Layer(self.interaction, self._width, reads_embeddings=True),
            *mlp_layers("top_mlp", self.top_mlp, last_cut=False),
        ]
