"""Keeping a DCT-DP threshold on target between estimates: a Newton step on the entry count.

A full estimate of ``tau`` is a top-k over every entry of a layer. Between estimates the layer
already compares every ``|acc|`` with ``tau``; counting the entries above a second, higher probe
``tau * PROBE`` costs one more comparison and tells how steeply the count falls with ``tau``
there. With ``count(t) ~ t^(-alpha)`` locally, ``alpha = log(sent / above_probe) / log(PROBE)``,
and the ``tau`` that would have sent ``target`` is ``tau * (sent / target)^(1 / alpha)``. That is
the next step's threshold: a few scalar operations instead of a selection, so a layer whose
gradients drift, or whose touched-entry count changes every step (a table's), follows its target
without re-estimating.

Counts are noisy when small, so both are smoothed by ``PSEUDO_COUNT`` (a layer that sends one
entry a step does not jump at every 0 or 2), the slope is bounded to ``[MIN_SLOPE, MAX_SLOPE]``
(a flat or empty tail gives no slope) and one step moves ``tau`` by at most ``MAX_FACTOR``
either way. The density guard stays behind it as a backstop (``DensityGuard(at_once=False)``):
it re-estimates a layer whose whole window left the band while its recent steps, which the
correction has already acted on, are still out of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PROBE = 1.25
PSEUDO_COUNT = 1.0
MIN_SLOPE, MAX_SLOPE = 0.5, 20.0
MAX_FACTOR = 2.0
GAIN = 0.8
DECAY = 0.8


def corrected_threshold(
    tau: float, sent: float, above_probe: float, target: float, slope_sent: float | None = None
) -> float:
    """The threshold for the next step, from this step's ``sent`` entries at ``tau`` (those with
    ``|acc| >= tau``), ``above_probe`` of them at ``tau * PROBE``, and the ``target`` count.

    ``tau == 0`` (every nonzero entry goes out) stays 0: only an estimate can raise it.

    Example::

        tau = corrected_threshold(tau, sent=150, above_probe=40, target=100)  # raised
    """
    if tau <= 0.0:
        return tau
    sent_s = sent + PSEUDO_COUNT
    at_tau = sent_s if slope_sent is None else slope_sent + PSEUDO_COUNT
    slope = math.log(at_tau / (above_probe + PSEUDO_COUNT)) / math.log(PROBE)
    slope = min(max(slope, MIN_SLOPE), MAX_SLOPE)
    factor = (sent_s / (target + PSEUDO_COUNT)) ** (GAIN / slope)
    return tau * min(max(factor, 1.0 / MAX_FACTOR), MAX_FACTOR)


@dataclass
class TrackedCounts:
    """A layer's recent entries sent and targets, decayed by ``DECAY`` a step: the error tracking
    corrects is that of the last few steps, not one step's noise.

    Example::

        tracked.record(sent=150, target=100)
        tau = tracked.next_threshold(tau, sent=150, above_probe=40)
    """

    sent: float = 0.0
    target: float = 0.0

    def record(self, sent: int, target: int) -> None:
        self.sent = DECAY * self.sent + sent
        self.target = DECAY * self.target + target

    def recent_ratio(self) -> float:
        """Recent entries sent over their target (smoothed like the correction)."""
        return (self.sent + PSEUDO_COUNT) / (self.target + PSEUDO_COUNT)

    def next_threshold(self, tau: float, sent: int, above_probe: int) -> float:
        """The threshold for the next step, this step's counts recorded."""
        return corrected_threshold(tau, self.sent, above_probe, self.target, slope_sent=sent)
