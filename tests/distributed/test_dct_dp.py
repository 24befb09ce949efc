"""DCT-DP across gloo ranks, each case against a reference.

- ``density=1.0`` against plain DDP (its built-in all-reduce): the same gradients every step.
- The sparse exchange against a dense simulation of every rank's selection, with unequal and
  zero counts and the dense fallback.
- A run saved and restored into fresh DDP, optimizer and hook state against the same run
  uninterrupted.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dct import DCTDPState, dct_dp_hook
from dct.comm.meter import ByteMeter, all_gather_bytes
from dct.comm.sparse_all_reduce import COUNT_BYTES, sparse_all_reduce
from dct.compression.positions import encoded_size
from tests.distributed.spawn import run_ranks

ROWS, DIM = 40, 4


class TinyRecommender(nn.Module):
    """An embedding bag (gradients mostly exact zeros) feeding a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.EmbeddingBag(ROWS, DIM, mode="sum")
        self.head = nn.Linear(DIM, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.table(ids)).squeeze(1)


def batch(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randint(ROWS, (8, 3), generator=g), torch.randn(8, generator=g)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> list[torch.Tensor]:
    ids, target = batch(step, dist.get_rank())
    optimizer.zero_grad()
    (model(ids) - target).square().mean().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    optimizer.step()
    return grads


def hooked(state: DCTDPState) -> DistributedDataParallel:
    model = DistributedDataParallel(TinyRecommender())
    model.register_comm_hook(state, dct_dp_hook)
    return model


def dense_density_against_plain_ddp(steps: int) -> list[tuple[list, list]]:
    plain = DistributedDataParallel(TinyRecommender())
    dct = hooked(DCTDPState(density=1.0, update_every=5))
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (plain, dct)]
    return [
        (train_step(plain, optimizers[0], step), train_step(dct, optimizers[1], step))
        for step in range(steps)
    ]


@pytest.mark.parametrize("world", [2, 4])
def test_density_one_gives_plain_ddp_gradients(world, tmp_path):
    for per_step in run_ranks(world, dense_density_against_plain_ddp, 20, tmp_dir=tmp_path):
        for plain_grads, dct_grads in per_step:
            for plain, dct in zip(plain_grads, dct_grads):
                torch.testing.assert_close(dct, plain, rtol=0, atol=1e-6)


def selection_of(rank: int, numel: int, count: int, dtype: torch.dtype) -> tuple:
    g = torch.Generator().manual_seed(rank)
    positions = torch.randperm(numel, generator=g)[:count].sort().values
    return positions, torch.randn(count, generator=g).to(dtype)


def exchange_against_simulation(numel: int, counts: list[int], dtype: torch.dtype) -> dict:
    rank = dist.get_rank()
    meter = ByteMeter()
    positions, values = selection_of(rank, numel, counts[rank], dtype)
    exchange = sparse_all_reduce(positions, values, torch.full((numel,), 7.0), meter=meter)
    expected = torch.zeros(numel)
    for r, count in enumerate(counts):
        where, what = selection_of(r, numel, count, dtype)
        expected.index_add_(0, where, what.float())
    return {
        "sum": exchange.future.wait(),
        "expected": expected,
        "fallback": exchange.dense_fallback,
        "sent": meter.totals()["dp"].sent,
        "payload": counts[rank] * values.element_size() + encoded_size(counts[rank], numel),
    }


@pytest.mark.parametrize(
    "world, counts, dtype, fallback",
    [
        (2, [5, 0], torch.float32, False),
        (2, [0, 0], torch.float16, False),
        (4, [3, 0, 40, 1], torch.float16, False),
        (4, [900, 1000, 0, 950], torch.float32, True),
    ],
)
def test_sparse_exchange_of_unequal_and_zero_counts_equals_the_dense_sum(
    world, counts, dtype, fallback, tmp_path
):
    numel = 1000
    for result in run_ranks(
        world, exchange_against_simulation, numel, counts, dtype, tmp_dir=tmp_path
    ):
        torch.testing.assert_close(result["sum"], result["expected"], rtol=1e-6, atol=1e-6)
        assert result["fallback"] == fallback
        if not fallback and sum(counts):
            expected = all_gather_bytes(COUNT_BYTES, world) + all_gather_bytes(
                result["payload"], world
            )
            assert result["sent"] == expected


def save_restore_against_uninterrupted(first: int, then: int, path: str) -> dict:
    settings = dict(density=0.1, update_every=3, value_dtype="float16")

    def fresh() -> tuple[DistributedDataParallel, torch.optim.Optimizer, DCTDPState]:
        state = DCTDPState(**settings)
        model = hooked(state)
        return model, torch.optim.Adagrad(model.parameters(), lr=0.1), state

    model, optimizer, _ = fresh()
    for step in range(first + then):
        train_step(model, optimizer, step)
    uninterrupted = [p.detach().clone() for p in model.parameters()]

    model, optimizer, state = fresh()
    for step in range(first):
        train_step(model, optimizer, step)
    checkpoint = {
        "model": model.module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "dct_dp": state.state_dict(),
    }
    torch.save(checkpoint, f"{path}.{dist.get_rank()}")
    del model, optimizer, state

    model, optimizer, state = fresh()
    checkpoint = torch.load(f"{path}.{dist.get_rank()}")
    model.module.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    state.load_state_dict(checkpoint["dct_dp"])
    for step in range(first, first + then):
        train_step(model, optimizer, step)
    return {"uninterrupted": uninterrupted, "restored": [p.detach() for p in model.parameters()]}


def test_restored_state_continues_exactly_like_the_uninterrupted_run(tmp_path):
    results = run_ranks(
        2, save_restore_against_uninterrupted, 5, 7, str(tmp_path / "ckpt"), tmp_dir=tmp_path
    )
    for result in results:
        for restored, uninterrupted in zip(result["restored"], result["uninterrupted"]):
            assert torch.equal(restored, uninterrupted)
