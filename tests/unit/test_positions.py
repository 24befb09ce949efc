"""Elias-Fano position code, against references independent of the implementation.

- Round trip: ``decode(encode(p))`` is compared with the Python list ``p`` itself.
- Layout: bytes worked out by hand from the module docstring (low bits, then the unary high
  part, each packed little-endian within bytes).
- ``low_bit_width`` is compared with ``floor(log2(universe / count))`` found by integer search.
- Size: ``code.numel()`` against ``encoded_size``, and that against the Elias-Fano bound.
  With ``low = floor(log2(U / n))`` the code holds ``n * low`` low bits and
  ``n + ((U - 1) >> low) + 1`` upper bits. Since ``2 ** low > U / (2 n)``, ``(U - 1) >> low``
  is at most ``2 n - 1``, and when ``U / n`` is a power of two it is at most ``n - 1``. Either
  way the total is at most ``n * (2 + ceil(log2(U / n)))`` bits, and each of the two parts is
  padded to whole bytes separately (at most 7 bits each), so
  ``8 * bytes <= n * (2 + ceil(log2(U / n))) + 14``, a little under the ``... / 8 + 2`` bytes
  usually quoted.
"""

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dct.compression.positions import (
    decode_positions,
    encode_positions,
    encoded_size,
    low_bit_width,
)


def floor_log2_ratio(universe: int, count: int) -> int:
    """Largest ``b`` with ``count * 2**b <= universe``."""
    bits = 0
    while count << (bits + 1) <= universe:
        bits += 1
    return bits


def ceil_log2_ratio(universe: int, count: int) -> int:
    """Smallest ``c`` with ``count * 2**c >= universe``."""
    bits = 0
    while count << bits < universe:
        bits += 1
    return bits


def elias_fano_bound_bits(count: int, universe: int) -> int:
    return count * (2 + ceil_log2_ratio(universe, count))


def round_trip(positions: list[int], universe: int) -> tuple[list[int], torch.Tensor]:
    code = encode_positions(torch.tensor(positions, dtype=torch.int64), universe)
    decoded = decode_positions(code, len(positions), universe)
    assert decoded.dtype == torch.int64
    return decoded.tolist(), code


@st.composite
def sorted_positions(draw, max_universe: int = 3000) -> tuple[list[int], int]:
    universe = draw(st.integers(1, max_universe))
    if draw(st.booleans()):
        return list(range(universe)), universe
    chosen = draw(st.sets(st.integers(0, universe - 1), max_size=min(universe, 300)))
    return sorted(chosen), universe


@st.composite
def counts_and_universes(draw) -> tuple[int, int]:
    universe = draw(st.integers(1, 10**9))
    return draw(st.integers(1, min(universe, 10**6))), universe


@settings(max_examples=100, deadline=None)
@given(sorted_positions())
@example(([], 1))
@example(([0], 1))
@example(([0, 999], 1000))
@example(([999], 1000))
@example((list(range(64)), 64))
def test_round_trip_is_exact_and_size_matches(case):
    positions, universe = case
    decoded, code = round_trip(positions, universe)

    assert decoded == positions
    assert code.dtype == torch.uint8
    assert code.numel() == encoded_size(len(positions), universe)


@pytest.mark.parametrize(
    ("positions", "universe"),
    [
        ([], 1),
        ([], 10**6),
        ([0], 1),
        ([0], 10**6),
        ([10**6 - 1], 10**6),
        ([0, 10**6 - 1], 10**6),
        (list(range(257)), 257),
        ([2**40, 2**40 + 1], 2**41),
    ],
)
def test_edge_cases_round_trip(positions, universe):
    decoded, code = round_trip(positions, universe)

    assert decoded == positions
    assert code.numel() == encoded_size(len(positions), universe)


@settings(max_examples=100, deadline=None)
@given(counts_and_universes())
def test_low_bit_width_is_floor_log2_of_ratio(case):
    count, universe = case

    assert low_bit_width(count, universe) == floor_log2_ratio(universe, count)


def test_low_bit_width_of_no_positions_is_zero():
    assert low_bit_width(0, 1000) == 0


@settings(max_examples=100, deadline=None)
@given(counts_and_universes())
@example((1, 1))
@example((1000, 1000))
@example((5000, 10**6))
@example((1, 2**40))
def test_size_within_elias_fano_bound(case):
    count, universe = case
    size = encoded_size(count, universe)

    assert 8 * size <= elias_fano_bound_bits(count, universe) + 14
    assert size <= count * (2 + ceil_log2_ratio(universe, count)) / 8 + 2


@pytest.mark.parametrize(
    ("positions", "universe", "expected"),
    [
        # low = 8: low bytes 3, 70, 900 & 255 = 132; highs 0, 0, 3 set upper bits 0, 1, 5.
        ([3, 70, 900], 1000, [3, 70, 132, 35]),
        # low = 2: low bit stream 1,0 | 1,0 | 0,1 -> bits 0, 2, 5; highs 0, 1, 1 -> bits 0, 2, 3.
        ([1, 5, 6], 16, [0b100101, 0b1101]),
    ],
)
def test_layout_is_low_bits_then_unary_highs_little_endian(positions, universe, expected):
    assert encode_positions(torch.tensor(positions), universe).tolist() == expected


def test_no_positions_take_no_bytes():
    assert encoded_size(0, 10**6) == 0
    assert encode_positions(torch.empty(0, dtype=torch.int64), 10**6).numel() == 0


def test_half_percent_density_takes_under_ten_bits_per_position():
    universe = 10**6
    generator = torch.Generator().manual_seed(0)
    positions = torch.randperm(universe, generator=generator)[: universe // 200].sort().values

    code = encode_positions(positions, universe)

    # 32-bit indices would take 32 bits a position, 16-bit deltas 16.
    assert code.numel() * 8 / positions.numel() < 10
    assert torch.equal(decode_positions(code, positions.numel(), universe), positions)
