"""The metered comm hook against DDP's own all-reduce: same gradients, bytes as the ring model."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dct.comm.meter import ByteMeter, ring_all_reduce_bytes
from dct.comm.metered_allreduce import MeteredAllReduceState, metered_allreduce_hook
from tests.distributed.spawn import run_ranks


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 1))


def grads_with_and_without_hook() -> dict:
    rank = dist.get_rank()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(rank))
    plain = DistributedDataParallel(net())
    hooked = DistributedDataParallel(net())
    meter = ByteMeter()
    hooked.register_comm_hook(
        MeteredAllReduceState(dist.group.WORLD, meter), metered_allreduce_hook
    )
    for model in (plain, hooked):
        model(x).square().sum().backward()
    return {
        "plain": [p.grad for p in plain.parameters()],
        "hooked": [p.grad for p in hooked.parameters()],
        "bytes": meter.totals()["dp"],
        "numel": sum(p.numel() for p in plain.parameters()),
    }


@pytest.mark.parametrize("world", [2, 3])
def test_hook_matches_plain_ddp_and_counts_ring_bytes(world, tmp_path):
    results = run_ranks(world, grads_with_and_without_hook, tmp_dir=tmp_path)
    for result in results:
        for hooked, plain in zip(result["hooked"], result["plain"]):
            torch.testing.assert_close(hooked, plain, rtol=1e-6, atol=1e-7)
        expected = ring_all_reduce_bytes(4 * result["numel"], world)
        assert result["bytes"].sent == result["bytes"].dense == expected
