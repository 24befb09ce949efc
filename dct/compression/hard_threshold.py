"""DCT-DP's selection for one layer: a hard threshold on ``|gradient + residual|``, error feedback.

The threshold ``tau`` is the ``ceil(density * n)``-th largest magnitude, estimated only now and
then (sorting every step is what makes plain top-k slow); every step in between keeps the entries
with ``|acc| >= tau`` (``at_or_above``, then ``take``). What is not sent stays in the residual
and is added to the next gradient, so no gradient mass is ever lost: ``sent + residual == acc``,
exactly, for every entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dct.compression.wire_dtype import to_wire

# The smallest positive float: a threshold of 0 keeps every nonzero entry, none of the zeros.
SMALLEST = float(torch.nextafter(torch.tensor(0.0), torch.tensor(1.0)))


def target_count(numel: int, density: float) -> int:
    """Entries a layer of ``numel`` entries should send at ``density``: at least one."""
    return max(1, math.ceil(density * numel))


def estimate_threshold(
    magnitudes: Tensor, density: float, sample_size: int = 0, seed: int = 0
) -> float:
    """The ``ceil(density * n)``-th largest of ``magnitudes`` (flat, non-negative).

    ``density == 1`` (or an empty layer) needs no threshold: 0.0. With ``0 < sample_size < n``
    the quantile is read off ``sample_size`` entries drawn uniformly (with replacement, generator
    seeded by ``seed``), which trades an exact top-k over ``n`` entries for one over
    ``sample_size``.
    """
    if density >= 1.0 or magnitudes.numel() == 0:
        return 0.0
    if 0 < sample_size < magnitudes.numel():
        generator = torch.Generator(device=magnitudes.device).manual_seed(seed)
        drawn = torch.randint(
            magnitudes.numel(), (sample_size,), generator=generator, device=magnitudes.device
        )
        magnitudes = magnitudes[drawn]
    k = target_count(magnitudes.numel(), density)
    return torch.topk(magnitudes, k, sorted=False).values.min().item()


@dataclass
class Selection:
    """What one layer sends: sorted flat ``positions``, ``values`` in the wire dtype."""

    positions: Tensor
    values: Tensor


def at_or_above(magnitude: Tensor, tau: Tensor | float) -> Tensor:
    """Where ``magnitude >= tau`` (``tau`` a scalar or one per entry), zeros never: a threshold
    of 0 keeps every nonzero entry."""
    if isinstance(tau, Tensor):
        return magnitude >= tau.clamp_min(SMALLEST)
    return magnitude >= max(tau, SMALLEST)


def take(acc: Tensor, positions: Tensor, value_dtype: torch.dtype) -> Selection:
    """The entries of flat ``acc`` at ``positions`` (ascending), rounded to ``value_dtype``.

    Values beyond the wire dtype's finite range are clamped to it; ``feed_back`` keeps the rest.
    """
    return Selection(positions, to_wire(acc[positions], value_dtype))


def feed_back(acc: Tensor, sent: Selection) -> None:
    """Turn ``acc`` into the residual, in place: ``acc`` minus exactly what was sent.

    Rounding to the wire dtype loses nothing: ``acc - round(acc)`` is exact in ``acc``'s dtype,
    so ``residual + scatter(sent) == acc`` bit for bit.
    """
    acc[sent.positions] -= sent.values.to(acc.dtype)
