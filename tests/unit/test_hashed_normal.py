"""Counter-based normals: deterministic per (key, index), standard normal, independent streams."""

from __future__ import annotations

import numpy as np
from scipy import stats

from dct.data.hashed_normal import hashed_normal, stream_key


def test_an_entry_is_the_same_alone_or_in_any_batch() -> None:
    key = stream_key(3, 1)
    index = np.array([5, 0, 10**12, 7, 5])
    together = hashed_normal(key, index)
    alone = np.array([hashed_normal(key, np.array([i]))[0] for i in index])
    assert np.array_equal(together, alone) and together[0] == together[4]


def test_entries_are_standard_normal_and_streams_uncorrelated() -> None:
    index = np.arange(200_000)
    first, second = hashed_normal(stream_key(0, 0), index), hashed_normal(stream_key(0, 1), index)
    assert stats.kstest(first, "norm").pvalue > 1e-3
    assert abs(first.mean()) < 5 / np.sqrt(len(index))
    assert abs(first.std() - 1.0) < 5 / np.sqrt(2 * len(index))
    assert abs(np.corrcoef(first, second)[0, 1]) < 5 / np.sqrt(len(index))
    assert abs(np.corrcoef(first[:-1], first[1:])[0, 1]) < 5 / np.sqrt(len(index))


def test_keys_differ_by_every_part() -> None:
    keys = {stream_key(a, b, c) for a in range(3) for b in range(3) for c in range(3)}
    assert len(keys) == 27
