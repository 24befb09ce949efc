"""Hang guards that a busy machine does not trip: limits stretched by how loaded the machine is.

A limit is written for an otherwise idle machine. ``slowness()`` is the 1-minute load average
per core (never below 1: more runnable processes than cores share them), times
``DCT_TEST_TIMEOUT_SCALE`` (default 1) for machines slower still. ``Deadline`` spends its budget
at the rate the machine allows, re-reading the load as it waits, so other jobs starting midway
stretch it too. A real hang still ends the test, later; the failure says it timed out, not that
something asserted, and how the limit was reached.
"""

from __future__ import annotations

import os
import time

SCALE_ENV = "DCT_TEST_TIMEOUT_SCALE"


def slowness() -> float:
    """How many times slower than idle this machine runs now, times ``DCT_TEST_TIMEOUT_SCALE``."""
    per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    return max(1.0, per_core) * float(os.environ.get(SCALE_ENV, "1"))


def scaled(idle_limit_s: float) -> float:
    """``idle_limit_s`` stretched for this machine's load now (for a limit fixed up front)."""
    return idle_limit_s * slowness()


class Deadline:
    """An idle-machine budget of ``idle_limit_s``; each wall second spends ``1 / slowness()``.

    Example::

        deadline = Deadline(120)
        while not done():
            if deadline.expired():
                raise TimeoutError(deadline.explain())
    """

    def __init__(self, idle_limit_s: float) -> None:
        self.idle_limit_s = idle_limit_s
        self.started = self._last = time.monotonic()
        self.spent = 0.0
        self.worst = 1.0

    def expired(self) -> bool:
        now, factor = time.monotonic(), slowness()
        self.spent += (now - self._last) / factor
        self._last, self.worst = now, max(self.worst, factor)
        return self.spent > self.idle_limit_s

    def explain(self) -> str:
        return (
            f"timed out after {time.monotonic() - self.started:.0f} s of wall time, the budget of "
            f"{self.idle_limit_s:g} s on an idle machine stretched by load (slowness up to "
            f"{self.worst:.1f}, {SCALE_ENV}={os.environ.get(SCALE_ENV, '1')}); nothing asserted. "
            f"On a slow machine set {SCALE_ENV}=3"
        )
