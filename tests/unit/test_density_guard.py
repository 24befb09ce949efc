"""The two-sided density guard, alone and driving DCT-DP's thresholds on synthetic gradients.

The streams are the situations the guard exists for, each checked against the same stream with
the guard's band made so wide that only the scheduled estimate acts (the stale reference):

- gradients shrink 10x after the first estimate: the stale threshold starves the layer; the guard
  brings every window of steps back into the band;
- gradients grow 10x: no step sends more than ``factor`` times its target;
- a stationary stream: after the first steps the guard stops re-estimating.
"""

from __future__ import annotations

import pytest
import torch

from dct import DCTDPState
from dct.compression.density_guard import (
    MIN_WINDOW_ENTRIES,
    OVER,
    UNDER,
    DensityGuard,
    DensityWindow,
)
from dct.compression.hard_threshold import target_count
from dct.train.density_report import DensityBand
from tests.unit.fake_bucket import FakeBucket

ENTRIES, DENSITY = 10_000, 0.01
TARGET = target_count(ENTRIES, DENSITY)
WIDE = 1e9  # a band no stream leaves: the threshold is only ever estimated on schedule


def stream_counts(scale_after_first_estimate: float, steps: int, **settings) -> tuple[list, dict]:
    """Entries sent per compressed step on a stream of Gaussian gradients whose scale changes
    right after the first threshold estimate (warm-up is 2 steps), and the final stats."""
    state = DCTDPState(density=DENSITY, update_every=10**6, **settings)
    param, generator = torch.zeros(ENTRIES), torch.Generator().manual_seed(0)
    counts = []
    for step in range(steps):
        scale = scale_after_first_estimate if step > state.warmup_steps else 1.0
        bucket = FakeBucket([param], [scale * torch.randn(ENTRIES, generator=generator)])
        positions, _ = state.select(bucket)
        state.maybe_increase_step(bucket)
        if step >= state.warmup_steps:
            counts.append(positions.numel())
    return counts, state.compression_stats()


def test_a_shrinking_stream_returns_to_the_band_within_the_window():
    stale, _ = stream_counts(0.1, 60, guard_factor=WIDE)
    assert max(stale[1:]) < TARGET / 3  # what a stale threshold does
    counts, stats = stream_counts(0.1, 60)
    assert all(TARGET / 1.5 <= c <= 1.5 * TARGET for c in counts), counts
    assert stats["guard_under"] >= 1


def test_a_wider_window_reestimates_once_per_window_on_a_shrinking_stream():
    counts, stats = stream_counts(0.1, 42, guard_window=4)
    assert (
        stats["guard_under"] == 10
    )  # 40 compressed steps, windows of 4 from the first estimate on
    assert all(c == TARGET for c in counts[3::4])  # each window's last step re-estimates


def test_a_growing_stream_is_capped_every_step():
    stale, _ = stream_counts(10.0, 30, guard_factor=WIDE)
    assert max(stale) > 10 * TARGET
    counts, stats = stream_counts(10.0, 30)
    assert max(counts) <= 1.5 * TARGET
    assert stats["guard_over"] >= 1


def test_a_stationary_stream_settles_and_needs_few_estimates():
    counts, first_half = stream_counts(1.0, 500)
    assert all(TARGET / 1.5 <= c <= 1.5 * TARGET for c in counts)
    assert first_half["threshold_estimates"] <= 50
    _, whole = stream_counts(1.0, 1000)
    assert whole["threshold_estimates"] - first_half["threshold_estimates"] <= 5


def test_over_is_immediate_for_a_layer_judged_step_by_step():
    guard, window = DensityGuard(factor=1.5, window=1), DensityWindow()
    assert guard.verdict(window, sent=150, target=100) is None
    assert guard.verdict(window, sent=151, target=100) == OVER


def test_under_waits_for_the_window_and_judges_its_sum():
    guard = DensityGuard(factor=1.5, window=3)
    window = DensityWindow()
    assert [guard.verdict(window, s, 100) for s in (60, 60)] == [None, None]
    assert guard.verdict(window, 79, 100) == UNDER  # 199 of 300: below 300 / 1.5
    window.restart()
    assert [guard.verdict(window, s, 100) for s in (100, 0, 100)] == [None, None, None]
    assert window == DensityWindow()  # an in-band window starts the next one


def test_a_small_target_is_judged_over_enough_steps_to_expect_the_minimum():
    guard, window = DensityGuard(factor=1.5, window=1), DensityWindow()
    assert guard.length(1) == MIN_WINDOW_ENTRIES
    verdicts = [guard.verdict(window, 2 if i % 2 else 0, target=1) for i in range(32)]
    assert verdicts == [None] * 32  # 0 or 2 entries a step is noise around 1
    window.restart()
    assert guard.verdict(window, 48, target=1) is None  # the whole window's allowance ...
    assert guard.verdict(window, 1, target=1) == OVER  # ... spent early


@pytest.mark.parametrize(
    "settings, message",
    [({"factor": 1.0}, "guard_factor=1.0 must be > 1"), ({"window": 0}, "guard_window=0")],
)
def test_impossible_guard_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        DensityGuard(**settings)


def test_density_band_counts_intervals_outside_it_per_hook():
    band = DensityBand(density=0.01, factor=1.5, hooks=["tables", "tower"])
    for tower in (0.01, 0.0066, 0.0151, 0.001):
        band.observe(
            {"dct_dp/tables/achieved_density": 0.01, "dct_dp/tower/achieved_density": tower}
        )
    band.observe({"train/loss": 0.5})  # an interval without compressed steps
    summary = band.summary()
    assert summary["dp_tables_intervals_outside_band"] == 0
    assert summary["dp_tower_intervals_outside_band"] == 3
    assert summary["dp_stage_intervals_outside_band"] is None
    [warning] = band.warnings()
    assert "tower hook" in warning and "3 of 4 logging intervals" in warning


def test_a_layer_with_fewer_nonzero_entries_than_its_target_is_not_reestimated():
    """Mostly-zero gradients (a table's untouched rows): everything nonzero already goes out."""
    state = DCTDPState(density=0.5, update_every=10**6)
    param = torch.zeros(1000)
    for step in range(20):
        grad = torch.zeros(1000)
        grad[step] = 1.0
        state.select(FakeBucket([param], [grad]))
        state.maybe_increase_step(FakeBucket([param], [grad]))
    stats = state.compression_stats()
    assert stats["threshold_estimates"] == 1 and stats["guard_under"] == 0
