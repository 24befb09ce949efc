"""Row-wise int8/int4 quantization against its format's bounds, and its wire sizes by hand."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dct.comm.quantized_codecs import CastRows, QuantizedRows
from dct.compression.quantize import dequantize, quantize, quantized_width

finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


def rows_of(values: list[float], width: int) -> torch.Tensor:
    n = len(values) // width
    return torch.tensor(values[: n * width], dtype=torch.float32).reshape(n, width)


def step_of(rows: torch.Tensor, bits: int) -> torch.Tensor:
    """Each row's quantization step, ``(max - min) / (2^bits - 1)``, as ``[n, 1]``; with 4 bits
    at most that of the bf16 offset rounded down (2^-7 of ``|min|``), the bf16 scale rounded up
    (2^-7 of itself, and the least bf16 for a tiny one)."""
    low = rows.amin(1, keepdim=True)
    spread = rows.amax(1, keepdim=True) - low
    if bits == 8:
        return spread / 255
    return (spread + 2**-7 * low.abs()) / 15 * (1 + 2**-7) + 1e-38


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([8, 4]),
    st.integers(1, 9),
    st.lists(finite, min_size=9, max_size=90),
    st.booleans(),
)
def test_round_trip_error_is_within_the_step(bits, width, values, stochastic):
    """Nearest: at most half a step; stochastic: less than a step (plus fp32 rounding)."""
    rows = rows_of(values, width)
    packed = quantize(rows, bits, stochastic)
    assert packed.dtype == torch.uint8 and packed.shape == (
        rows.shape[0],
        quantized_width(width, bits),
    )
    back = dequantize(packed, width, bits, torch.float32)
    step = step_of(rows, bits)
    slack = 1e-6 * rows.abs().amax(1, keepdim=True) + 1e-30
    bound = step if stochastic else step / 2
    assert ((back - rows).abs() <= bound + slack).all()


def test_constant_rows_and_extremes_come_back_exactly():
    """With 4 bits, the largest value within the bf16 scale's rounding (3/15 is no bf16)."""
    rows = torch.tensor([[3.25, 3.25, 3.25], [-1.0, 0.5, 2.0]])
    for bits, slack in ((8, 1e-6), (4, 15 * 2**-8 * 0.2)):
        back = dequantize(quantize(rows, bits), 3, bits, torch.float32)
        assert torch.equal(back[0], rows[0])
        assert back[1, 0] == -1.0 and back[1, 2].item() == pytest.approx(2.0, abs=slack)


def test_stochastic_rounding_is_unbiased():
    """A value a third of the way between two codes averages to itself over many draws."""
    torch.manual_seed(0)
    # A step of 1/16 (a bf16, so int4's scale is exact); the middle value between codes 0 and 1.
    row = torch.tensor([[0.0, 1.0 / 3.0 / 16.0, 15.0 / 16.0]])
    draws = torch.stack(
        [dequantize(quantize(row, 4, stochastic=True), 3, 4, torch.float32) for _ in range(4000)]
    )
    assert draws[:, 0, 1].mean().item() == pytest.approx(row[0, 1].item(), rel=0.05)
    assert draws[:, 0, 1].unique().tolist() == [0.0, 1.0 / 16.0]


@pytest.mark.parametrize(
    "bits, width, expected",
    [(8, 16, 16 + 8), (4, 16, 8 + 4), (4, 5, 3 + 4), (8, 1, 1 + 8), (4, 1, 1 + 4)],
)
def test_wire_bytes_by_hand(bits, width, expected):
    """Codes (a byte each, or two a byte), then a 4-byte scale and a 4-byte offset."""
    assert quantized_width(width, bits) == expected


def test_codecs_give_each_segment_its_own_scale():
    """Two tables' vectors side by side, of ranges 1e-3 and 1e3: per-table scales keep the
    small one; one scale for the whole row would flatten it to a single code."""
    small = torch.linspace(-1e-3, 1e-3, 8)
    large = torch.linspace(-1e3, 1e3, 8)
    rows = torch.cat([small, large]).unsqueeze(0)
    per_table = QuantizedRows(8, segment=8)
    parts, _ = per_table.encode(rows, None)
    assert parts[0].shape == (1, 2 * quantized_width(8, 8))
    assert per_table.layout(16, torch.float32) == [(2 * quantized_width(8, 8), torch.uint8)]
    back, _ = per_table.decode(parts, 16, torch.float32, None)
    assert (back[0, :8] - small).abs().max() <= 2e-3 / 255
    whole, _ = QuantizedRows(8).decode(
        QuantizedRows(8).encode(rows, None)[0], 16, torch.float32, None
    )
    assert (whole[0, :8] - small).abs().max() > 1.0


def test_casts_clamp_to_the_format():
    codec = CastRows(torch.float16)
    parts, _ = codec.encode(torch.tensor([[1e6, -1e6, 0.1]]), None)
    back, _ = codec.decode(parts, 3, torch.float32, None)
    assert back[0, 0] == torch.finfo(torch.float16).max and back[0, 1] == -back[0, 0]
    assert codec.layout(3, torch.float32) == [(3, torch.float16)]
