"""DeepFM (Guo et al., 2017): a factorization machine and a deep MLP side by side on shared
embeddings, their logits added.

The bottom MLP turns the dense features into one vector as wide as an embedding, a field like
every feature's pooled embedding (as TorchRec's DeepFM treats its dense arch's output). Over the
``num_features + 1`` fields ``e_i``::

    logit = w . flat(e) + b                         first order (a linear map of the fields)
          + sum_{i<j} <e_i, e_j>                    second order, the FM
          + MLP(flat(e))                            the deep part (``top_mlp``)

The first-order term reads the fields' embeddings, as torch-rechub's DeepFM does, so every model
here has the same sparse part. The FM's pairwise sum is ``(|sum_i e_i|^2 - sum_i |e_i|^2) / 2``.

Cutting the deep part into pipeline stages needs the FM's logit carried past the cut: the
interaction outputs ``[first order + FM, flat(e)]`` and each deep layer passes column 0 through
untouched (``Carried``), the last adding it to its own output (``AddCarried``). The forward pass
is these steps, so a cut sends one column more than the layer's width. Where it may be cut:
after any bottom or deep layer but the last (``bottom_mlp.<i>``, ``top_mlp.<j>``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from models.dlrm import mlp_layers
from models.mlp import dense_generator, linear_blocks, mlp
from models.recommender import DenseArch, Layer


class FMInteraction(nn.Module):
    """``[n, 1 + fields * dim]``: the first-order and FM logit, then the flattened fields."""

    def __init__(self, fields: int, dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.first_order = nn.Linear(fields * dim, 1)
        with torch.no_grad():
            std = math.sqrt(2.0 / (fields * dim + 1))
            self.first_order.weight.normal_(0.0, std, generator=generator)
            self.first_order.bias.zero_()

    def forward(self, dense: Tensor, pooled: Tensor) -> Tensor:
        fields = torch.cat([dense.unsqueeze(1), pooled], dim=1)
        flat = fields.flatten(1)
        summed = fields.sum(dim=1)
        pairs = 0.5 * (summed * summed - (fields * fields).sum(dim=1)).sum(dim=1, keepdim=True)
        return torch.cat([self.first_order(flat) + pairs, flat], dim=1)


class Carried(nn.Module):
    """``block`` on every column but the first, which passes through (the FM's logit)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x[:, :1], self.block(x[:, 1:])], dim=1)


class AddCarried(nn.Module):
    """The last deep layer's logit plus the carried first column: ``[n, 1]``."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :1] + self.block(x[:, 1:])


class DeepFMTower(DenseArch):
    """DeepFM's dense part: bottom MLP, first-order and FM terms, deep MLP (``top_mlp``'s hidden
    widths, then one logit), added.

    Example::

        tower = DeepFMTower(13, [64, 16], 26, [256, 128], seed=0)
    """

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
        dim, fields = bottom_mlp[-1], num_features + 1
        self.bottom_mlp = mlp([num_dense, *bottom_mlp], generator, last_relu=True)
        self.interaction = FMInteraction(fields, dim, generator)
        deep = linear_blocks(mlp([fields * dim, *top_mlp, 1], generator, last_relu=False))
        self.top_mlp = nn.Sequential(*map(Carried, deep[:-1]), AddCarried(deep[-1]))
        self._widths = [1 + fields * dim, *(1 + width for width in top_mlp), 1]

    def forward(self, dense: Tensor, pooled: Tensor) -> Tensor:
        """Logits ``[n]`` from dense features ``[n, num_dense]`` and pooled embeddings."""
        return self.top_mlp(self.interaction(self.bottom_mlp(dense), pooled)).squeeze(1)

    def layers(self) -> list[Layer]:
        deep = list(self.top_mlp)
        return [
            *mlp_layers("bottom_mlp", self.bottom_mlp),
            Layer(self.interaction, self._widths[0], reads_embeddings=True),
            *(
                Layer(step, width, f"top_mlp.{j}" if j < len(deep) - 1 else None)
                for j, (step, width) in enumerate(zip(deep, self._widths[1:]))
            ),
        ]
