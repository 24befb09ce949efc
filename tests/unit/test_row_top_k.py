"""Per-row top-k selection and its wire packing, against references in plain Python.

- Selection is compared with a Python sort of ``(-|x|, position)`` pairs: the ``k`` largest
  magnitudes, equal magnitudes going to the lower position.
- Packing round-trips through raw bytes: ``unpack(pack(x))`` gives back the selected values
  (rounded to the wire dtype the way ``Tensor.to`` rounds) and their positions.
- ``scatter_rows`` of the selection keeps exactly those entries and zeros the rest; at
  ``k == width`` it is the input itself, bit for bit.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dct.compression.row_top_k import (
    pack,
    packed_width,
    position_dtype,
    scatter_rows,
    top_k_positions,
    unpack,
)

WIRE = [torch.float32, torch.float16, torch.bfloat16]


def reference_top_k(row: list[float], k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda i: (-abs(row[i]), i))[:k]


@st.composite
def rows_and_k(draw, max_width: int = 40) -> tuple[torch.Tensor, int]:
    """Rows drawn from a few values so that equal magnitudes (ties, +x and -x, zeros) are common."""
    n = draw(st.integers(0, 6))
    width = draw(st.integers(1, max_width))
    palette = st.sampled_from([0.0, 1.0, -1.0, 0.5, -2.0, 2.0, 3.25, -7.5, 1e-3])
    cells = draw(st.lists(palette, min_size=n * width, max_size=n * width))
    k = draw(st.integers(1, width))
    return torch.tensor(cells, dtype=torch.float32).reshape(n, width), k


@given(rows_and_k())
@settings(max_examples=200, deadline=None)
def test_keeps_the_k_largest_magnitudes_ties_to_the_lower_position(case):
    rows, k = case
    positions = top_k_positions(rows, k)
    assert positions.shape == (rows.shape[0], k)
    for row, picked in zip(rows.tolist(), positions.tolist()):
        assert picked == reference_top_k(row, k)


@given(rows_and_k(), st.sampled_from(WIRE))
@settings(max_examples=200, deadline=None)
def test_unpack_of_pack_gives_the_selected_values_and_positions(case, value_dtype):
    rows, k = case
    width = rows.shape[1]
    positions = top_k_positions(rows, k)
    packed = pack(rows, positions, value_dtype)
    assert packed.dtype == torch.uint8
    assert packed.shape == (rows.shape[0], packed_width(k, width, value_dtype))
    values, got_positions = unpack(packed, k, width, value_dtype)
    assert got_positions.tolist() == positions.tolist()
    expected = [[row[i] for i in picked] for row, picked in zip(rows.tolist(), positions.tolist())]
    assert values.dtype == value_dtype
    assert values.tolist() == torch.tensor(expected).to(value_dtype).tolist()


@given(rows_and_k())
@settings(max_examples=200, deadline=None)
def test_rebuilt_rows_hold_the_selection_and_zeros_elsewhere(case):
    rows, k = case
    positions = top_k_positions(rows, k)
    rebuilt = scatter_rows(rows.gather(1, positions), positions, rows.shape[1])
    for row, out, picked in zip(rows.tolist(), rebuilt.tolist(), positions.tolist()):
        kept = set(picked)
        assert out == [x if i in kept else 0.0 for i, x in enumerate(row)]


@given(rows_and_k())
@settings(max_examples=100, deadline=None)
def test_keeping_every_entry_is_the_identity(case):
    rows, _ = case
    width = rows.shape[1]
    positions = top_k_positions(rows, width)
    values, got = unpack(pack(rows, positions, torch.float32), width, width, torch.float32)
    assert torch.equal(scatter_rows(values, got, width), rows)


@pytest.mark.parametrize(
    ("width", "dtype"),
    [(1, torch.uint8), (256, torch.uint8), (257, torch.int16), (32768, torch.int16)]
    + [(32769, torch.int32)],
)
def test_positions_use_the_smallest_integer_that_holds_the_width(width, dtype):
    assert position_dtype(width) == dtype


def test_wide_rows_round_trip_their_positions():
    rows = torch.zeros(2, 40000)
    rows[0, 39999], rows[0, 300], rows[1, 33000] = 5.0, -4.0, 1.0
    positions = top_k_positions(rows, 2)
    values, got = unpack(pack(rows, positions, torch.float16), 2, 40000, torch.float16)
    assert got.tolist() == [[39999, 300], [33000, 0]]
    assert values.tolist() == [[5.0, -4.0], [1.0, 0.0]]


def test_fp16_values_beyond_range_arrive_clamped_not_infinite():
    rows = torch.tensor([[1e6, -1e6, 1.0]])
    positions = top_k_positions(rows, 2)
    values, _ = unpack(pack(rows, positions, torch.float16), 2, 3, torch.float16)
    assert values.tolist() == [[65504.0, -65504.0]]
