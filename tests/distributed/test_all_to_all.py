"""The row all-to-all against a reference every rank can compute alone.

Rank ``r``'s input and the weights each receiver applies are seeded by rank, so every rank knows
what it must receive and which gradient must come back. Row counts and widths differ per rank,
some blocks are empty, and codecs with several parts and forward-to-backward context are used.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
import torch.distributed as dist

from dct.comm.all_to_all import RowExchange, all_to_all_rows
from dct.comm.codec import DENSE, CodecPair
from dct.comm.meter import ByteMeter
from tests.distributed.spawn import run_ranks

WIDTHS = [5, 2, 7, 3]


def rows_to(src: int, dst: int) -> int:
    """Rows rank ``src`` sends to ``dst``; zero for some pairs."""
    return (2 * src + dst) % 4


def rank_input(rank: int, world: int) -> torch.Tensor:
    rows = sum(rows_to(rank, j) for j in range(world))
    return torch.randn(rows, WIDTHS[rank], generator=torch.Generator().manual_seed(rank))


def receiver_weights(src: int, dst: int) -> torch.Tensor:
    seed = 100 + 10 * src + dst
    return torch.randn(
        rows_to(src, dst), WIDTHS[src], generator=torch.Generator().manual_seed(seed)
    )


def block_for(src: int, dst: int, world: int) -> torch.Tensor:
    start = sum(rows_to(src, j) for j in range(dst))
    return rank_input(src, world)[start : start + rows_to(src, dst)]


class HalfCodec:
    """Values travel as float16."""

    def layout(self, width: int, dtype: torch.dtype) -> list[tuple[int, torch.dtype]]:
        return [(width, torch.float16)]

    def encode(self, rows: torch.Tensor, ctx: Any) -> tuple[list[torch.Tensor], Any]:
        return [rows.half()], None

    def decode(self, parts, width, dtype, ctx):
        return parts[0].to(dtype), None


class TopOneForward:
    """Each row's largest-magnitude entry: its value and its position."""

    def layout(self, width: int, dtype: torch.dtype) -> list[tuple[int, torch.dtype]]:
        return [(1, dtype), (1, torch.int32)]

    def encode(self, rows, ctx):
        positions = rows.abs().argmax(dim=1, keepdim=True)
        return [rows.gather(1, positions), positions.int()], positions

    def decode(self, parts, width, dtype, ctx):
        values, positions = parts[0], parts[1].long()
        dense = torch.zeros(values.shape[0], width, dtype=dtype)
        return dense.scatter(1, positions, values), positions


class TopOneBackward:
    """Gradients only at the positions the forward pass kept."""

    def layout(self, width: int, dtype: torch.dtype) -> list[tuple[int, torch.dtype]]:
        return [(1, dtype)]

    def encode(self, rows, ctx):
        return [rows.gather(1, ctx)], None

    def decode(self, parts, width, dtype, ctx):
        dense = torch.zeros(parts[0].shape[0], width, dtype=dtype)
        return dense.scatter(1, ctx, parts[0]), None


def top_one(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x).scatter(1, x.abs().argmax(1, keepdim=True), 1.0)


# name: (codecs, what a sent block looks like on arrival, the gradient that comes back for a
# block given the receiver's weights, wire bytes per value where fixed)
CODECS = {
    "dense": (DENSE, lambda x: x, lambda w, x: w, 4),
    "half": (
        CodecPair(HalfCodec(), HalfCodec()),
        lambda x: x.half().float(),
        lambda w, x: w.half().float(),
        2,
    ),
    "top1": (
        CodecPair(TopOneForward(), TopOneBackward()),
        lambda x: x * top_one(x),
        lambda w, x: w * top_one(x),
        None,
    ),
}


def exchange_and_backprop(
    x: torch.Tensor,
    widths: list[int],
    rows_to: Callable[[int, int], int],
    receiver_weights: Callable[[int, int], torch.Tensor],
    codecs: CodecPair,
) -> dict:
    """This rank's part of one exchange of ``x`` and a backward pass of the weighted sum of what
    arrived: the blocks received, ``x``'s gradient and the bytes metered."""
    me, world = dist.get_rank(), dist.get_world_size()
    meter = ByteMeter()
    x = x.requires_grad_()
    spec = RowExchange(
        send_rows=[rows_to(me, j) for j in range(world)],
        recv_rows=[rows_to(s, me) for s in range(world)],
        widths=widths,
        group=dist.group.WORLD,
        meter=meter,
        codecs=codecs,
    )
    blocks = all_to_all_rows(x, spec)
    sum((block * receiver_weights(s, me)).sum() for s, block in enumerate(blocks)).backward()
    return {"blocks": [b.detach() for b in blocks], "grad": x.grad, "bytes": meter.totals()["mp"]}


def exchange_rank(codec_name: str) -> dict:
    me, world = dist.get_rank(), dist.get_world_size()
    return exchange_and_backprop(
        rank_input(me, world), WIDTHS[:world], rows_to, receiver_weights, CODECS[codec_name][0]
    )


@pytest.mark.parametrize("world", [3, 4])
@pytest.mark.parametrize("codec_name", ["dense", "half", "top1"])
def test_all_to_all_matches_reference(world, codec_name, tmp_path):
    _, forward_view, backward_view, value_bytes = CODECS[codec_name]
    results = run_ranks(world, exchange_rank, codec_name, tmp_dir=tmp_path)
    for me, result in enumerate(results):
        for s, block in enumerate(result["blocks"]):
            expected = forward_view(block_for(s, me, world))
            torch.testing.assert_close(block, expected, rtol=0, atol=0)

        sent_blocks = [block_for(me, j, world) for j in range(world)]
        expected_grad = torch.cat(
            [backward_view(receiver_weights(me, j), blk) for j, blk in enumerate(sent_blocks)]
        )
        torch.testing.assert_close(result["grad"], expected_grad, rtol=0, atol=0)

        out_rows = sum(rows_to(me, j) for j in range(world) if j != me)
        in_entries = sum(rows_to(s, me) * WIDTHS[s] for s in range(world) if s != me)
        dense = 4 * (out_rows * WIDTHS[me] + in_entries)
        assert result["bytes"].dense == dense
        if value_bytes is not None:
            assert result["bytes"].sent == dense * value_bytes // 4
        else:
            in_rows = sum(rows_to(s, me) for s in range(world) if s != me)
            assert result["bytes"].sent == out_rows * (4 + 4) + in_rows * 4


def test_group_of_one_returns_input_unmetered():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        meter = ByteMeter()
        x = torch.randn(3, 4)
        spec = RowExchange([3], [3], [4], dist.group.WORLD, meter)
        assert all_to_all_rows(x, spec)[0] is x
        assert meter.totals()["mp"].sent == 0
    finally:
        dist.destroy_process_group()
