"""The MLPs of the dense parts, initialised from the model's seed alone.

Every dense part draws its weights, in construction order, from one generator seeded by the
model's seed (``dense_generator``), never from the global random state: the same seed builds
the same dense part on every rank, so data parallelism needs no start-up broadcast.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

# The dense part's generator stream, apart from every table's.
DENSE_STREAM = 1 << 20


def dense_generator(seed: int) -> torch.Generator:
    """The generator a model seeded ``seed`` draws its dense part from."""
    return torch.Generator().manual_seed(seed * 1_000_003 + DENSE_STREAM)


def mlp(widths: Sequence[int], generator: torch.Generator, last_relu: bool) -> nn.Sequential:
    """Linear layers ``widths[0] -> widths[1] -> ...``, each followed by a ReLU but (unless
    ``last_relu``) the last; weights normal(0, sqrt(2 / (fan_in + fan_out))), biases
    normal(0, sqrt(1 / fan_out)), drawn from ``generator`` in order."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        linear = nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            linear.weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
            linear.bias.normal_(0.0, math.sqrt(1.0 / fan_out), generator=generator)
        layers.append(linear)
        if last_relu or i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def linear_blocks(layers: nn.Sequential) -> list[nn.Sequential]:
    """Each linear layer of ``layers`` with the activation that follows it, if any (sharing
    its modules): the steps a pipeline may cut between."""
    blocks: list[list[nn.Module]] = []
    for module in layers:
        if isinstance(module, nn.Linear):
            blocks.append([])
        blocks[-1].append(module)
    return [nn.Sequential(*block) for block in blocks]
