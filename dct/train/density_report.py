"""Whether each DCT-DP hook sent what was asked, logging interval by logging interval.

A run's total achieved density can hide a hook that sent a few percent of its target for the
whole run (the tables hold most entries, so their density dominates the sum). This counts, per
hook, the logging intervals whose achieved density left the guard's band
``[density / guard_factor, density * guard_factor]``, for ``metrics.json`` and a warning.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from dct.train.compression_report import DP_HOOKS

PREFIX, SUFFIX = "dct_dp/", "/achieved_density"
# A hook outside its band in more than this share of its intervals is reported as a warning.
WARN_SHARE = 0.1


class DensityBand:
    """Counts of logging intervals, in and out of the band, per DCT-DP hook.

    Example::

        band = DensityBand(density=0.005, factor=1.5, hooks=model.dp_states)
        band.observe(interval_scalars)  # after every logging interval
        band.summary()  # {"dp_tower_intervals_outside_band": 0, ...}
    """

    def __init__(self, density: float, factor: float, hooks: Iterable[str]) -> None:
        self.low, self.high = density / factor, density * factor
        self.intervals = dict.fromkeys(hooks, 0)
        self.outside = dict.fromkeys(hooks, 0)

    def observe(self, scalars: Mapping[str, float]) -> None:
        """Take one interval's scalars (``dct_dp/<hook>/achieved_density`` keys)."""
        for hook in self.intervals:
            density = scalars.get(f"{PREFIX}{hook}{SUFFIX}")
            if density is None:
                continue
            self.intervals[hook] += 1
            self.outside[hook] += not self.low <= density <= self.high

    def summary(self) -> dict[str, int | None]:
        """``dp_<hook>_intervals_outside_band`` for every hook name, ``None`` for an absent hook."""
        return {f"dp_{hook}_intervals_outside_band": self.outside.get(hook) for hook in DP_HOOKS}

    def state_dict(self) -> dict[str, dict[str, int]]:
        return {"intervals": dict(self.intervals), "outside": dict(self.outside)}

    def load_state_dict(self, state: dict[str, dict[str, int]]) -> None:
        """Continue counting for the hooks both know (a resumed run's)."""
        for hook in self.intervals:
            self.intervals[hook] = state["intervals"].get(hook, 0)
            self.outside[hook] = state["outside"].get(hook, 0)

    def warnings(self) -> list[str]:
        """One line per hook outside its band in more than ``WARN_SHARE`` of its intervals."""
        return [
            f"DCT-DP's {hook} hook sent outside [{self.low:.3g}, {self.high:.3g}] (the target "
            f"density within dct.dp.guard_factor) in {self.outside[hook]} of "
            f"{self.intervals[hook]} logging intervals: its thresholds are stale; lower "
            "dct.dp.guard_window or dct.dp.update_every"
            for hook in self.intervals
            if self.outside[hook] > WARN_SHARE * self.intervals[hook]
        ]
