"""DCT-MP's codecs in the row all-to-all, against the dense exchange and a one-process reference.

Every rank's input (``TABLES[r]`` tables of ``DIM`` values per sample, uneven across ranks) and
the weights each receiver applies are seeded, so every rank can compute alone what it must
receive and which gradient must come back:

- at density 1.0 with fp32 values, outputs and gradients equal the dense exchange's bit for bit;
- below 1.0 they equal a reference that keeps each row's (or each table's) ``k`` largest
  magnitudes, found by a Python sort, and lets gradients through at those entries only, both
  rounded to their wire dtypes; the bytes are ``k`` values and positions forward, ``k`` values
  back;
- ``gradcheck`` in float64 confirms the backward is the derivative of the forward through the
  real autograd function (the masks being locally constant).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist

from dct.comm.all_to_all import RowExchange, _AllToAllRows
from dct.comm.codec import DENSE
from dct.comm.dct_mp import dct_mp_codecs
from dct.comm.meter import ByteMeter
from tests.distributed.spawn import run_ranks
from tests.distributed.test_all_to_all import exchange_and_backprop

TABLES = [3, 2, 1, 2]
DIM = 4


def rows_to(src: int, dst: int) -> int:
    return 2 + (src + 2 * dst) % 3


def width(rank: int) -> int:
    return TABLES[rank] * DIM


def rank_input(rank: int, world: int) -> torch.Tensor:
    rows = sum(rows_to(rank, j) for j in range(world))
    return torch.randn(rows, width(rank), generator=torch.Generator().manual_seed(rank))


def receiver_weights(src: int, dst: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(100 + 10 * src + dst)
    return torch.randn(rows_to(src, dst), width(src), generator=generator)


def block_for(src: int, dst: int, world: int) -> torch.Tensor:
    start = sum(rows_to(src, j) for j in range(dst))
    return rank_input(src, world)[start : start + rows_to(src, dst)]


def reference_mask(block: torch.Tensor, density: float, segment: int | None) -> torch.Tensor:
    """1.0 at each segment's ``ceil(density * segment)`` largest magnitudes, ties to the lower."""
    segment = segment or block.shape[1]
    k = max(1, math.ceil(density * segment))
    mask = torch.zeros_like(block)
    for r, row in enumerate(block.tolist()):
        for start in range(0, len(row), segment):
            part = range(start, start + segment)
            for i in sorted(part, key=lambda i: (-abs(row[i]), i))[:k]:
                mask[r, i] = 1.0
    return mask


def exchange(setting: dict) -> dict:
    me, world = dist.get_rank(), dist.get_world_size()
    codecs = (
        DENSE
        if setting["density"] is None
        else dct_mp_codecs(
            setting["density"], setting["value_dtype"], setting["grad_dtype"], setting["segment"]
        )
    )
    widths = [width(r) for r in range(world)]
    return exchange_and_backprop(rank_input(me, world), widths, rows_to, receiver_weights, codecs)


def exchanges(settings: list[dict]) -> list[dict]:
    return [exchange(one) for one in settings]


def setting(density, segment=None, value_dtype=torch.float32, grad_dtype=None) -> dict:
    return {
        "density": density,
        "segment": segment,
        "value_dtype": value_dtype,
        "grad_dtype": grad_dtype,
    }


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("segment", [None, DIM])
def test_full_density_is_the_dense_exchange_bit_for_bit(world, segment, tmp_path):
    results = run_ranks(world, exchanges, [setting(None), setting(1.0, segment)], tmp_dir=tmp_path)
    for want, got in results:
        for a, b in zip(want["blocks"], got["blocks"]):
            assert torch.equal(a, b)
        assert torch.equal(want["grad"], got["grad"])
        assert got["bytes"].dense == want["bytes"].dense


SPARSE_CASES = {
    "sample-fp32": setting(0.3),
    "table-fp32": setting(0.3, DIM),
    "sample-fp16": setting(0.05, value_dtype=torch.float16),
    "table-bf16-fp16": setting(0.5, DIM, torch.bfloat16, torch.float16),
}
SPARSE_WORLD = 4


@pytest.fixture(scope="module")
def sparse_results(tmp_path_factory) -> dict[str, list[dict]]:
    per_rank = run_ranks(
        SPARSE_WORLD,
        exchanges,
        list(SPARSE_CASES.values()),
        tmp_dir=tmp_path_factory.mktemp("sparse"),
    )
    return {name: [rank[i] for rank in per_rank] for i, name in enumerate(SPARSE_CASES)}


@pytest.mark.parametrize("name", list(SPARSE_CASES))
def test_sparse_exchange_matches_the_masked_reference(name, sparse_results):
    case, results, world = SPARSE_CASES[name], sparse_results[name], SPARSE_WORLD
    density, segment = case["density"], case["segment"]
    value_dtype, grad_dtype = case["value_dtype"], case["grad_dtype"] or case["value_dtype"]
    for me, result in enumerate(results):
        for s, block in enumerate(result["blocks"]):
            sent = block_for(s, me, world)
            expected = (sent * reference_mask(sent, density, segment)).to(value_dtype).float()
            assert torch.equal(block, expected)
        expected_grad = torch.cat(
            [
                (
                    receiver_weights(me, j)
                    * reference_mask(block_for(me, j, world), density, segment)
                )
                .to(grad_dtype)
                .float()
                for j in range(world)
            ]
        )
        assert torch.equal(result["grad"], expected_grad)

        def k(rank: int) -> int:
            seg = segment or width(rank)
            return width(rank) // seg * max(1, math.ceil(density * seg))

        out_rows = sum(rows_to(me, j) for j in range(world) if j != me)
        in_rows = {s: rows_to(s, me) for s in range(world) if s != me}
        forward = out_rows * k(me) * (value_dtype.itemsize + 1)
        backward = sum(rows * k(s) * grad_dtype.itemsize for s, rows in in_rows.items())
        assert result["bytes"].sent == forward + backward
        dense = 4 * (out_rows * width(me) + sum(r * width(s) for s, r in in_rows.items()))
        assert result["bytes"].dense == dense


def gradcheck_in_one_rank(segment: int | None) -> bool:
    # The public all_to_all_rows hands a one-rank group's rows straight back; the autograd
    # function itself still runs the codecs and the collective (to itself).
    spec = RowExchange(
        send_rows=[5],
        recv_rows=[5],
        widths=[12],
        group=dist.group.WORLD,
        meter=ByteMeter(),
        codecs=dct_mp_codecs(0.25, torch.float64, segment=segment),
    )
    x = torch.randn(5, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    return torch.autograd.gradcheck(
        lambda rows: _AllToAllRows.apply(rows, spec)[0], (x.requires_grad_(),)
    )


@pytest.mark.parametrize("segment", [None, DIM])
def test_backward_is_the_derivative_of_the_forward(segment, tmp_path):
    assert run_ranks(1, gradcheck_in_one_rank, segment, tmp_dir=tmp_path) == [True]
