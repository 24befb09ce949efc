"""The bounded Zipf law: exact head, closed-form tail, against the discrete law it stands for."""

from __future__ import annotations

import numpy as np
import pytest

from dct.data.zipf import HEAD, ZipfLaw, power_sum


@pytest.mark.parametrize("exponent", [0.8, 1.0, 1.05, 1.3])
def test_power_sum_matches_the_plain_sum(exponent: float) -> None:
    n = 3 * HEAD + 17
    exact = np.sum(np.arange(1, n + 1, dtype=np.float64) ** -exponent)
    assert power_sum(n, exponent) == pytest.approx(exact, rel=1e-10)


def test_small_law_is_the_exact_inverse_cdf() -> None:
    n, s = 1000, 1.05
    law = ZipfLaw(n, s)
    mass = np.arange(1, n + 1, dtype=np.float64) ** -s
    cdf = np.cumsum(mass) / mass.sum()
    uniform = np.random.default_rng(0).random(10_000)
    expected = np.minimum(np.searchsorted(cdf, uniform, side="right"), n - 1)
    assert np.array_equal(law.ranks(uniform), expected)


@pytest.mark.parametrize("exponent", [1.0, 1.05])
def test_tail_ranks_follow_the_discrete_law(exponent: float) -> None:
    """Rank frequencies over log-spaced tail buckets match the summed probabilities within 5
    standard errors, and the inverse CDF is monotone and ends at the last rank."""
    n = 40 * HEAD
    law = ZipfLaw(n, exponent)
    uniform = np.random.default_rng(1).random(2_000_000)
    ranks = law.ranks(uniform)
    assert ranks.min() >= 0 and ranks.max() < n
    edges = np.unique(np.geomspace(HEAD, n, 12).astype(np.int64))
    for low, high in zip(edges[:-1], edges[1:]):
        expected = law.prob(np.arange(low, high)).sum() * len(uniform)
        observed = np.count_nonzero((ranks >= low) & (ranks < high))
        assert abs(observed - expected) < 5 * np.sqrt(expected)
    grid = np.linspace(0.0, 1.0 - 1e-12, 10_001)
    assert np.all(np.diff(law.ranks(grid)) >= 0) and law.ranks(grid)[-1] == n - 1


def test_probabilities_sum_to_one_and_memory_stays_at_the_head() -> None:
    law = ZipfLaw(10_000_000, 1.05)
    assert law.prob(np.arange(law.n)).sum() == pytest.approx(1.0, abs=1e-9)
    assert law._head_cdf.nbytes == 8 * HEAD


def test_empty_law_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one rank"):
        ZipfLaw(0, 1.05)
