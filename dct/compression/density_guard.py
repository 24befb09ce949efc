"""When a layer's DCT-DP threshold has gone stale: the two-sided density guard.

A threshold ``tau`` estimated at one step sends the target share of entries at that step only.
Later gradients are larger or smaller, so the entries that pass drift away from the target: early
in training gradients shrink tens of times within a few hundred steps, and a ``tau`` estimated
then sends a few percent of what was asked for. The guard watches what a layer sends and calls
for a fresh estimate as soon as it leaves the band ``[target / factor, target * factor]``:

- **over**: one step sends more than ``factor * target`` entries;
- **under**: the steps since the last estimate (a window of ``window`` steps) sent fewer than
  ``1 / factor`` of their target in all.

Counts of selected entries fluctuate by about their square root, so a layer is judged over
enough steps to expect ``MIN_WINDOW_ENTRIES`` entries: a bias whose target is one entry a step is
judged over 32 steps, where one step's 0 or 2 entries would be noise. With ``window=1`` (the
default) a large layer is judged every step: a wider window lets a shrinking gradient starve the
layer for that long (measured in ``docs/fidelity/findings.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

OVER, UNDER = "over", "under"
MIN_WINDOW_ENTRIES = 32
# A backstop judges windows that expect this many entries: at 100, counting noise alone (about
# 10 %) almost never leaves the band, so a correctly tracked small layer is not re-estimated.
BACKSTOP_WINDOW_ENTRIES = 100
# As a backstop the guard still stops at once a step that sends this many times its allowance.
RUNAWAY = 4


@dataclass
class DensityWindow:
    """A layer's entries sent, and steps, since its threshold was last estimated or judged."""

    sent: int = 0
    steps: int = 0
    target: int = 0

    def restart(self) -> None:
        self.sent = self.steps = self.target = 0


@dataclass(frozen=True)
class DensityGuard:
    """The band's ``factor`` (> 1) and the shortest window in steps (>= 1).

    ``at_once=False`` makes the guard a backstop behind a threshold corrected every step
    (``dct.compression.threshold_tracking``): it judges whole windows only, of at least
    ``BACKSTOP_WINDOW_ENTRIES`` expected entries, against the sum of their steps' targets, so a
    target that changes from step to step (a table's touched entries) is judged as it was.

    Example::

        guard = DensityGuard(factor=1.5, window=1)
        if guard.verdict(layer_window, sent=chosen, target=k) is not None:
            tau = estimate_threshold(...)
            layer_window.restart()
    """

    factor: float = 1.5
    window: int = 1
    at_once: bool = True

    def __post_init__(self) -> None:
        if self.factor <= 1.0:
            raise ValueError(f"guard_factor={self.factor} must be > 1 (a multiple of the target)")
        if self.window < 1:
            raise ValueError(f"guard_window={self.window} must be >= 1 (steps)")

    def length(self, target: int) -> int:
        """Steps a layer with ``target`` entries a step is judged over."""
        return max(self.window, math.ceil(MIN_WINDOW_ENTRIES / target))

    def verdict(self, window: DensityWindow, sent: int, target: int) -> Optional[str]:
        """Record one step's ``sent`` entries; ``OVER``, ``UNDER`` or ``None`` (in band).

        ``OVER`` comes at once: from the step alone when it is expected to send enough entries
        to judge, else as soon as the window has sent more than its whole allowance. A window
        that ends in band starts the next one, so an early surplus never hides a later
        shortfall. After a verdict the caller re-estimates and calls ``window.restart()``.
        """
        if not self.at_once:
            return self._judge_whole_window(window, sent, target)
        length = self.length(target)
        if target >= MIN_WINDOW_ENTRIES and sent > self.factor * target:
            return OVER
        window.sent += sent
        window.target += target
        window.steps += 1
        if window.sent > self.factor * target * length:
            return OVER
        if window.steps < length:
            return None
        if window.sent * self.factor < length * target:
            return UNDER
        window.restart()
        return None

    def _judge_whole_window(self, window: DensityWindow, sent: int, target: int) -> Optional[str]:
        if target >= MIN_WINDOW_ENTRIES and sent > RUNAWAY * self.factor * target:
            return OVER
        window.sent += sent
        window.target += target
        window.steps += 1
        if window.steps < self.window or window.target < BACKSTOP_WINDOW_ENTRIES:
            return None
        if window.sent > self.factor * window.target:
            return OVER
        if window.sent * self.factor < window.target:
            return UNDER
        window.restart()
        return None
