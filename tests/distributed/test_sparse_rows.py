"""The replicas' sparse row exchange against a dense all-reduce of the same gradients, with
unequal and zero touched rows per rank, and its bytes against the payload it must carry."""

from __future__ import annotations

import torch
import torch.distributed as dist

from dct.comm.meter import ByteMeter
from dct.comm.sparse_rows import average_rows
from dct.embedding.rows import RowGradient
from tests.distributed.spawn import run_ranks

ROWS, DIM = (30, 5, 12), 3


def rank_gradients(rank: int) -> list[RowGradient]:
    """Table 0: overlapping rows, a different count per rank; table 1: rank 1 touches none;
    table 2: no rank touches anything."""
    g = torch.Generator().manual_seed(rank)
    counts = (4 + 3 * rank, 0 if rank == 1 else 2, 0)
    grads = []
    for rows, count in zip(ROWS, counts):
        ids = torch.randperm(rows, generator=g)[:count].sort().values
        grads.append(RowGradient(ids, torch.randn(count, DIM, generator=g)))
    return grads


def exchange() -> dict:
    meter = ByteMeter()
    mine = rank_gradients(dist.get_rank())
    averaged = average_rows(mine, None, meter)
    dense = [grad.to_dense(rows) for grad, rows in zip(mine, ROWS)]
    for tensor in dense:
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()
    return {
        "averaged": [(g.rows, g.values) for g in averaged],
        "dense": dense,
        "touched": [g.rows.numel() for g in mine],
        "bytes": meter.totals()["dp"],
    }


def test_exchange_equals_a_dense_all_reduce(tmp_path):
    ranks = run_ranks(3, exchange, tmp_dir=tmp_path)
    for result in ranks:
        for (rows, values), dense, size in zip(result["averaged"], result["dense"], ROWS):
            touched = dense.abs().sum(dim=1).nonzero().flatten()
            assert set(touched.tolist()) <= set(rows.tolist())
            torch.testing.assert_close(RowGradient(rows, values).to_dense(size), dense)
        # every replica applies the identical gradient
        for mine, first in zip(result["averaged"], ranks[0]["averaged"]):
            assert torch.equal(mine[0], first[0]) and torch.equal(mine[1], first[1])
    for result in ranks:  # each rank hands its rows (4-byte id + fp32 values) and counts to 2 peers
        payload = sum(result["touched"]) * (4 + 4 * DIM) + 4 * len(ROWS)
        assert result["bytes"].sent == result["bytes"].dense == 2 * payload
