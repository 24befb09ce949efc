"""Hard-threshold selection with error feedback, against references independent of the code.

- ``target_count`` against hand-computed counts.
- ``estimate_threshold`` (exact) against the ``ceil(density * n)``-th largest of ``sorted()``
  over the Python list; sampled, against determinism and the exact fraction of entries it keeps
  on a seeded exponential sample.
- ``at_or_above``, ``take`` and ``feed_back`` against a Python filter of the list for the
  positions, against ``struct``'s IEEE half rounding and a bit-level round-to-nearest-even for
  bfloat16 for the values, and against ``acc`` itself for conservation:
  ``residual + scatter(values) == acc``.
"""

import math
import struct

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dct.compression.hard_threshold import (
    at_or_above,
    estimate_threshold,
    feed_back,
    take,
    target_count,
)

FP16_MAX = 65504.0
TIES = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 3.0, FP16_MAX, -FP16_MAX]


def round_to_fp16(x: float) -> float:
    return struct.unpack("<e", struct.pack("<e", x))[0]


def round_to_bf16(x: float) -> float:
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return struct.unpack("<f", struct.pack("<I", rounded << 16))[0]


ROUND = {torch.float32: lambda x: x, torch.float16: round_to_fp16, torch.bfloat16: round_to_bf16}


def kth_largest(values: list[float], k: int) -> float:
    return sorted(values, reverse=True)[k - 1]


def scatter(positions: torch.Tensor, values: torch.Tensor, numel: int) -> torch.Tensor:
    out = torch.zeros(numel, dtype=torch.float32)
    out[positions] = values.to(torch.float32)
    return out


finite_fp16_range = st.one_of(st.sampled_from(TIES), st.floats(-FP16_MAX, FP16_MAX, width=32))


@st.composite
def acc_and_tau(draw) -> tuple[torch.Tensor, float]:
    values = draw(st.lists(finite_fp16_range, max_size=64))
    magnitudes = [abs(v) for v in values] or [0.0]
    tau = draw(
        st.one_of(
            st.just(0.0),
            st.sampled_from(magnitudes),
            st.sampled_from([0.5, 1.0, 3.0, FP16_MAX]),
            # float32 so that tau means the same to torch's float32 comparison as to Python's.
            st.floats(0.0, FP16_MAX, width=32),
        )
    )
    return torch.tensor(values, dtype=torch.float32), tau


def select_and_feed_back(acc: torch.Tensor, tau: float, value_dtype: torch.dtype) -> tuple:
    residual = acc.clone()
    selection = take(acc, at_or_above(acc.abs(), tau).nonzero().squeeze(1), value_dtype)
    feed_back(residual, selection)
    return selection, residual


@pytest.mark.parametrize(
    ("numel", "density", "expected"),
    [(1000, 0.005, 5), (1001, 0.005, 6), (10, 0.01, 1), (10, 0.0, 1), (7, 1.0, 7), (1, 0.5, 1)],
)
def test_target_count(numel, density, expected):
    assert target_count(numel, density) == expected


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from([0.0, 1.0, 2.5]), st.floats(0.0, 1e6, width=32)),
        min_size=1,
        max_size=200,
    ),
    st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
    st.sampled_from([0, 1, 2]),
)
@example([0.0], 0.5, 0)
@example([1.0, 1.0, 1.0, 0.0], 0.5, 0)
def test_exact_threshold_is_kth_largest(values, density, sample_multiple):
    magnitudes = torch.tensor(values, dtype=torch.float32)
    reference = magnitudes.tolist()
    k = math.ceil(density * len(reference))

    # A sample at least as large as n is no sample: the threshold is exact.
    tau = estimate_threshold(magnitudes, density, sample_size=sample_multiple * len(reference))

    assert tau == kth_largest(reference, k)
    assert sum(m >= tau for m in reference) >= max(1, k)


@pytest.mark.parametrize("sample_size", [0, 3])
def test_full_density_needs_no_threshold(sample_size):
    assert estimate_threshold(torch.tensor([5.0, 1.0, 2.0, 7.0]), 1.0, sample_size) == 0.0


def test_sampled_threshold_is_deterministic_per_seed_and_an_entry():
    magnitudes = torch.rand(100_000, generator=torch.Generator().manual_seed(0))

    first = estimate_threshold(magnitudes, 0.01, sample_size=2000, seed=3)

    assert estimate_threshold(magnitudes, 0.01, sample_size=2000, seed=3) == first
    assert estimate_threshold(magnitudes, 0.01, sample_size=2000, seed=4) != first
    assert first in set(magnitudes.tolist())


def test_sampled_threshold_keeps_about_the_target_fraction():
    n = 10**6
    magnitudes = torch.empty(n).exponential_(generator=torch.Generator().manual_seed(0))

    tau = estimate_threshold(magnitudes, 0.01, sample_size=20_000, seed=0)

    kept = int((magnitudes >= tau).sum())
    assert 8_000 <= kept <= 12_000


@settings(max_examples=100, deadline=None)
@given(acc_and_tau(), st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
@example((torch.tensor([1.0, -1.0, 1.0, 0.0, -0.0]), 1.0), torch.float16)
@example((torch.tensor([0.0, -0.0]), 0.0), torch.bfloat16)
@example((torch.tensor([1e-8, 3e-8, -65504.0, 65504.0, 0.1]), 0.0), torch.float16)
@example((torch.tensor([1.0 + 2**-20, 3.14159, -1e-30]), 0.0), torch.bfloat16)
def test_selection_matches_reference_and_conserves_acc_exactly(case, value_dtype):
    acc, tau = case
    reference = acc.tolist()
    expected_positions = [i for i, a in enumerate(reference) if abs(a) >= tau and a != 0]

    selection, residual = select_and_feed_back(acc, tau, value_dtype)

    assert selection.positions.tolist() == expected_positions
    assert selection.values.dtype == value_dtype
    expected_values = [ROUND[value_dtype](reference[i]) for i in expected_positions]
    assert selection.values.to(torch.float32).tolist() == expected_values
    assert residual.dtype == acc.dtype
    sent = scatter(selection.positions, selection.values, acc.numel())
    assert torch.equal(residual + sent, acc)


@settings(max_examples=100, deadline=None)
@given(st.lists(finite_fp16_range, max_size=64))
def test_zero_threshold_sends_every_nonzero_and_leaves_no_residual(values):
    acc = torch.tensor(values, dtype=torch.float32)

    selection, residual = select_and_feed_back(acc, 0.0, torch.float32)

    assert selection.positions.tolist() == [i for i, v in enumerate(values) if v != 0]
    assert selection.values.tolist() == [v for v in values if v != 0]
    assert torch.equal(residual, torch.zeros_like(acc))


def test_fp16_values_beyond_range_are_clamped_and_the_rest_stays_in_the_residual():
    acc = torch.tensor([70_000.0, -1e10, FP16_MAX, 1.0, 3e38, 556_389_312.0])

    selection, residual = select_and_feed_back(acc, 0.0, torch.float16)

    assert selection.values.tolist() == [FP16_MAX, -FP16_MAX, FP16_MAX, 1.0, FP16_MAX, FP16_MAX]
    assert torch.isfinite(selection.values).all()
    expected_residual = torch.tensor(
        [70_000.0 - FP16_MAX, -1e10 + FP16_MAX, 0.0, 0.0, 3e38 - FP16_MAX, 556_389_312.0 - FP16_MAX]
    )
    torch.testing.assert_close(residual, expected_residual)
    # Not bit for bit: once |acc| is far above 65504, acc - 65504 is rounded to float32 and adding
    # 65504 back rounds again, e.g. 556389312 - 65504 -> 556323840, + 65504 -> 556389376.
    torch.testing.assert_close(residual + scatter(selection.positions, selection.values, 6), acc)
