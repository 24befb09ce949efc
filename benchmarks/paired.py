"""Paired comparisons of training runs: is a method's accuracy non-inferior to its baseline?

Runs are paired when they share everything but the method: the same data, the same training
seed (model initialisation), the same batches. The per-pair difference ``method - baseline``
removes what the seed does to both, so a handful of pairs tells a real change from noise where
unpaired means over the same seeds cannot. With ``n`` pairs of mean ``d`` and sample standard
deviation ``s``, the 95 % interval is Student's ``d ± t(0.975, n - 1) s / sqrt(n)``.

Non-inferiority at ``margin`` (a loss the user accepts, e.g. 0.001 AUC):

- **non-inferior** when the interval's lower end is above ``-margin``;
- **inferior** when its upper end is below ``-margin``;
- **inconclusive** otherwise (too few pairs, or too much spread to tell).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from scipy.stats import t as student_t

NON_INFERIOR, INFERIOR, INCONCLUSIVE = "non-inferior", "inferior", "inconclusive"


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``method - baseline`` over ``n`` pairs, with its 95 % interval ``[low, high]``."""

    n: int
    mean: float
    low: float
    high: float

    def verdict(self, margin: float) -> str:
        if self.low > -margin:
            return NON_INFERIOR
        if self.high < -margin:
            return INFERIOR
        return INCONCLUSIVE


def paired_difference(method: Sequence[float], baseline: Sequence[float]) -> PairedDifference:
    """The paired difference of two equally long, pair-by-pair aligned sequences.

    Raises ``ValueError`` for unequal lengths or fewer than two pairs (no interval exists).

    Example::

        paired_difference([0.781, 0.779, 0.783], [0.780, 0.780, 0.782]).verdict(margin=0.001)
    """
    if len(method) != len(baseline):
        raise ValueError(f"{len(method)} method values for {len(baseline)} baseline values")
    n = len(method)
    if n < 2:
        raise ValueError(f"{n} pair(s): a 95 % interval needs at least 2")
    differences = [m - b for m, b in zip(method, baseline)]
    mean = statistics.fmean(differences)
    half = student_t.ppf(0.975, n - 1) * statistics.stdev(differences) / math.sqrt(n)
    return PairedDifference(n, mean, mean - half, mean + half)
