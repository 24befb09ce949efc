"""The paired statistics behind the fidelity harness, on inputs whose answers are known by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from paired import INCONCLUSIVE, INFERIOR, NON_INFERIOR, paired_difference  # noqa: E402

# Differences 0.001, -0.001, 0.002, 0.000, 0.003: mean 0.001, sample std sqrt(2.5e-6),
# t(0.975, 4) = 2.776445, so the half width is 2.776445 * 0.0015811 / sqrt(5) = 0.0019632.
BASELINE = [0.780, 0.781, 0.779, 0.782, 0.780]
METHOD = [0.781, 0.780, 0.781, 0.782, 0.783]


def test_interval_matches_a_hand_computation():
    diff = paired_difference(METHOD, BASELINE)
    assert diff.n == 5
    assert diff.mean == pytest.approx(0.001, abs=1e-12)
    assert diff.low == pytest.approx(0.001 - 0.0019632, abs=1e-6)
    assert diff.high == pytest.approx(0.001 + 0.0019632, abs=1e-6)


def test_verdicts_at_a_margin():
    diff = paired_difference(METHOD, BASELINE)  # interval [-0.00096, 0.00296]
    assert diff.verdict(margin=0.001) == NON_INFERIOR
    assert diff.verdict(margin=0.0005) == INCONCLUSIVE
    shifted = paired_difference([m - 0.005 for m in METHOD], BASELINE)  # [-0.00596, -0.00204]
    assert shifted.verdict(margin=0.001) == INFERIOR


def test_identical_runs_are_non_inferior_with_a_zero_width_interval():
    diff = paired_difference(BASELINE, BASELINE)
    assert (diff.mean, diff.low, diff.high) == (0.0, 0.0, 0.0)
    assert diff.verdict(margin=0.001) == NON_INFERIOR


@pytest.mark.parametrize(
    "method, baseline, message",
    [([0.7], [0.7], "1 pair"), ([0.7, 0.71], [0.7], "2 method values for 1 baseline")],
)
def test_too_few_or_unaligned_pairs_are_refused(method, baseline, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(method, baseline)
