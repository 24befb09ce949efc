"""Bit-packed index columns: unpack(pack(x)) == x, in exactly the bytes counted by hand."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dct.compression.bit_pack import bits_for, pack_columns, packed_bytes, unpack_columns


@pytest.mark.parametrize(
    "count, bits", [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (256, 8), (257, 9)]
)
def test_bits_number_every_thing(count, bits):
    assert bits_for(count) == bits


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 40),
    st.lists(st.integers(1, 2**31), min_size=1, max_size=14),
    st.randoms(use_true_random=False),
)
def test_unpack_inverts_pack(n, counts, rng):
    bits = [bits_for(c) for c in counts]
    values = torch.tensor([[rng.randrange(c) for c in counts] for _ in range(n)], dtype=torch.long)
    values = values.view(n, len(counts))
    packed = pack_columns(values, bits)
    assert packed.dtype == torch.uint8
    assert packed.numel() == packed_bytes(n, bits) == -(-n * sum(bits) // 8)
    assert torch.equal(unpack_columns(packed, n, bits), values)


def test_bits_follow_one_another_lowest_first():
    """Rows (1, 2) and (3, 0) in 2 and 3 bits, each value lowest bit first: 1,0 | 0,1,0 |
    1,1 | 0,0,0, so the first byte holds bits 0, 3, 5 and 6 set, the second none."""
    packed = pack_columns(torch.tensor([[1, 2], [3, 0]]), [2, 3])
    assert packed.tolist() == [0b01101001, 0]


def test_words_straddle_bytes_and_rows():
    """Three rows of 31 + 31 + 3 bits (two words a row, rows starting mid-byte) against the
    same bits laid out one by one."""
    bits = [31, 31, 3]
    values = torch.tensor([[2**31 - 1, 12345, 5], [0, 2**30 + 7, 2], [99, 1, 7]])
    stream = [(int(v) >> k) & 1 for row in values for v, b in zip(row, bits) for k in range(b)]
    stream += [0] * (-len(stream) % 8)
    expected = [
        sum(bit << k for k, bit in enumerate(stream[i : i + 8])) for i in range(0, len(stream), 8)
    ]
    assert pack_columns(values, bits).tolist() == expected
    assert torch.equal(unpack_columns(pack_columns(values, bits), 3, bits), values)
