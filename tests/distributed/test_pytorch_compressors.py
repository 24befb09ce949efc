"""PyTorch's fp16 and PowerSGD hooks, metered, each against a reference.

Each world size is one spawn, every check of the hooks reading its results.

- fp16: plain DDP's gradients within fp16 rounding, for half the dense bytes.
- PowerSGD: PyTorch's own hook, unwrapped, on the same seed: the same gradients bit for bit
  (one bucket: unwrapped, it can hang on gloo with several); the bytes recorded are those of
  the tensors that reached ``dist.all_reduce`` (counted by a wrapper around it) on plain and
  compressing steps, with one bucket and with several.
- Training through the loop (embedding and pipeline mode) with ``dp_hook.name=fp16`` or
  ``powersgd``: the DP bytes PowerSGD's shape rule predicts for the model's parameters, and the
  dense run's losses for as long as PowerSGD all-reduces plainly.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import PowerSGDState, powerSGD_hook
from torch.nn.parallel import DistributedDataParallel

from dct.comm.meter import ByteMeter, ring_all_reduce_bytes
from dct.comm.metered_allreduce import MeteredAllReduceState
from dct.comm.pytorch_compressors import (
    MeteredPowerSGDState,
    metered_fp16_hook,
    metered_powersgd_hook,
)
from dct.config import (
    DPHookConfig,
    ModelConfig,
    OptimConfig,
    OutputConfig,
    ParallelConfig,
    RunConfig,
    SyntheticDataConfig,
    TrainConfig,
    model_parallel_size,
)
from dct.parallel.topology import GridShape, Topology
from dct.train.loop import train
from dct.train.summary import summary_metrics
from tests.distributed.spawn import run_ranks

STEPS, START, SEED = 6, 2, 5
ONE_BUCKET_MB, SMALL_BUCKETS_MB = 25.0, 0.004


class Recommender(nn.Module):
    """Gradients of every kind PowerSGD tells apart: vectors, matrices compressed at rank 1 and 4,
    and a 4 x 64 matrix compressed at rank 1 only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.EmbeddingBag(100, 16, mode="sum")
        self.mlp = nn.Sequential(
            nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 1)
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.table(ids)).squeeze(1)


def ddp(bucket_cap_mb: float) -> DistributedDataParallel:
    return DistributedDataParallel(Recommender(), bucket_cap_mb=bucket_cap_mb)


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.05)


def gradients(model: nn.Module, step: int) -> list[torch.Tensor]:
    """The synchronised gradients of this rank's batch of ``step``."""
    g = torch.Generator().manual_seed(1000 * step + dist.get_rank())
    ids, target = torch.randint(100, (8, 3), generator=g), torch.randn(8, generator=g)
    model.zero_grad()
    (model(ids) - target).square().mean().backward()
    return [p.grad.clone() for p in model.parameters()]


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> list[torch.Tensor]:
    grads = gradients(model, step)
    optimizer.step()
    return grads


def fp16_against_plain_ddp() -> dict:
    """Both on the same weights every step, so only the exchange tells them apart."""
    plain, hooked, meter = ddp(SMALL_BUCKETS_MB), ddp(SMALL_BUCKETS_MB), ByteMeter()
    hooked.register_comm_hook(MeteredAllReduceState(dist.group.WORLD, meter), metered_fp16_hook)
    steps = [(gradients(plain, step), gradients(hooked, step)) for step in range(4)]
    return {"steps": steps, "bytes": meter.totals()["dp"]}


class AllReduceLog:
    """Stands in for ``dist.all_reduce``, noting each payload's bytes while ``active``."""

    def __init__(self) -> None:
        self.all_reduce, self.active, self.payloads = dist.all_reduce, False, []

    def __call__(self, tensor: torch.Tensor, *args, **kwargs):
        if self.active:
            self.payloads.append(tensor.numel() * tensor.element_size())
        return self.all_reduce(tensor, *args, **kwargs)


def metered_powersgd(
    rank: int, bucket_cap_mb: float
) -> tuple[DistributedDataParallel, MeteredPowerSGDState]:
    state = MeteredPowerSGDState(
        dist.group.WORLD,
        ByteMeter(),
        matrix_approximation_rank=rank,
        start_powerSGD_iter=START,
        random_seed=SEED,
    )
    model = ddp(bucket_cap_mb)
    model.register_comm_hook(state, metered_powersgd_hook)
    return model, state


def metered_steps(rank: int, bucket_cap_mb: float, log: AllReduceLog) -> list[dict]:
    """Per step of the metered model: its gradients, the bytes recorded, the payloads seen."""
    model, state = metered_powersgd(rank, bucket_cap_mb)
    optimizer, steps = sgd(model), []
    for step in range(STEPS):
        before = state.meter.totals()["dp"]
        log.active, log.payloads = True, []
        grads = train_step(model, optimizer, step)
        log.active = False
        recorded = state.meter.totals()["dp"] - before
        steps.append({"grads": grads, "recorded": recorded, "seen": log.payloads})
    return steps


def pytorch_powersgd_steps(rank: int) -> list[list[torch.Tensor]]:
    model = ddp(ONE_BUCKET_MB)
    state = PowerSGDState(
        None, matrix_approximation_rank=rank, start_powerSGD_iter=START, random_seed=SEED
    )
    model.register_comm_hook(state, powerSGD_hook)
    optimizer = sgd(model)
    return [train_step(model, optimizer, step) for step in range(STEPS)]


def powersgd_against_pytorch(rank: int) -> dict:
    log = AllReduceLog()
    dist.all_reduce = log
    try:
        return {
            "pytorch": pytorch_powersgd_steps(rank),
            "one_bucket": metered_steps(rank, ONE_BUCKET_MB, log),
            "small_buckets": metered_steps(rank, SMALL_BUCKETS_MB, log),
        }
    finally:
        dist.all_reduce = log.all_reduce


def hooks_against_references(rank: int) -> dict:
    return {
        "numel": sum(p.numel() for p in Recommender().parameters()),
        "fp16": fp16_against_plain_ddp(),
        "powersgd": powersgd_against_pytorch(rank),
    }


@pytest.fixture(scope="module", params=[(2, 4), (3, 1)], ids=["world2-rank4", "world3-rank1"])
def hooks_run(request, tmp_path_factory) -> tuple[int, list[dict]]:
    """Per rank, what ``hooks_against_references`` returns, PowerSGD at rank 4 on 2 ranks and
    at rank 1 on 3 (where a ring's bytes are rounded per collective)."""
    world, rank = request.param
    tmp_dir = tmp_path_factory.mktemp("hooks")
    return world, run_ranks(world, hooks_against_references, rank, tmp_dir=tmp_dir)


def test_fp16_hook_matches_plain_ddp_for_half_the_bytes(hooks_run):
    world, results = hooks_run
    for result in results:
        for plain_grads, fp16_grads in result["fp16"]["steps"]:
            for plain, fp16 in zip(plain_grads, fp16_grads):
                # Each rank's share and each partial sum is rounded to fp16's 11 significant bits.
                atol = world * 2.0**-11 * plain.abs().max().item()
                torch.testing.assert_close(fp16, plain, rtol=0, atol=atol)
        recorded, numel = result["fp16"]["bytes"], result["numel"]
        assert recorded.sent == 4 * ring_all_reduce_bytes(2 * numel, world)
        assert recorded.dense == 4 * ring_all_reduce_bytes(4 * numel, world)


def test_metered_powersgd_gives_pytorch_gradients_bitwise(hooks_run):
    for result in hooks_run[1]:
        metered, pytorch = result["powersgd"]["one_bucket"], result["powersgd"]["pytorch"]
        for ours, theirs in zip(metered, pytorch):
            for mine, reference in zip(ours["grads"], theirs):
                assert torch.equal(mine, reference)


@pytest.mark.parametrize("layout", ["one_bucket", "small_buckets"])
def test_powersgd_bytes_recorded_are_those_all_reduced(hooks_run, layout):
    world, results = hooks_run
    for result in results:
        dense_bytes = 4 * result["numel"]
        for index, step in enumerate(result["powersgd"][layout]):
            recorded, seen = step["recorded"], step["seen"]
            assert recorded.sent == sum(ring_all_reduce_bytes(p, world) for p in seen)
            if layout == "one_bucket":
                assert recorded.dense == ring_all_reduce_bytes(dense_bytes, world)
            if index < START:
                assert sum(seen) == dense_bytes
            else:
                assert len(seen) % 3 == 0  # per bucket: the uncompressed tensors, the Ps, the Qs
                assert sum(seen) < dense_bytes


def powersgd_elements(shape: torch.Size, rank: int) -> int:
    """What PowerSGD all-reduces for a gradient (PyTorch's documented rule): an ``n x m`` matrix
    (trailing dimensions flattened) as rank-``r`` factors, ``(n + m) r`` elements, when that is
    less than half of ``n m``; else, and for a vector, every element."""
    n, m = shape[0], math.prod(shape[1:])
    r = min(n, m, rank)
    return (n + m) * r if 2 * (n + m) * r < n * m else n * m


def small_run(mp_mode: str, dp_hook: DPHookConfig) -> RunConfig:
    return RunConfig(
        seed=3,
        model=ModelConfig(
            embedding_dim=8,
            bottom_mlp=[16, 8],
            top_mlp=[16],
        ),
        data=SyntheticDataConfig(cardinalities=[50, 400, 30, 1000, 7, 120, 60], eval_size=256),
        parallel=ParallelConfig(
            mp_mode=mp_mode, cuts=["bottom_mlp.1"] if mp_mode == "pipeline" else []
        ),
        # SGD, tables too: a step in proportion to the gradient, so fp16's rounding stays as
        # small as it is (an Adagrad would scale near-zero entries up to full-size steps).
        optim=OptimConfig(name="sgd", tables="sgd"),
        train=TrainConfig(steps=STEPS_E2E, batch_size=128, lr=0.3, eval_every=20, log_every=5),
        dp_hook=dp_hook,
        output=OutputConfig(tensorboard=False, progress_bar=False),
    )


STEPS_E2E = 20
HOOKS = {
    "dense": DPHookConfig(),
    "fp16": DPHookConfig(name="fp16"),
    "powersgd": DPHookConfig(name="powersgd", powersgd_rank=2, powersgd_start_step=4),
}


def train_with_each_hook(mp_mode: str) -> dict:
    """Per hook: the run's metrics and losses, and the shapes of the gradients it averaged."""
    runs = {}
    for name, hook in HOOKS.items():
        cfg = small_run(mp_mode, hook)
        shape = GridShape(
            dist.get_world_size(), model_parallel_size(cfg), len(cfg.data.cardinalities)
        )
        topology = Topology(shape, "cpu")
        result = train(cfg, topology, torch.device("cpu"))
        runs[name] = {
            "metrics": summary_metrics(result, cfg, topology),
            "losses": result.losses,
            "shapes": [p.shape for p in result.model.parameters() if p.grad is not None],
        }
    return runs


def predicted_dp_bytes(ranks: list[dict], hook: str) -> tuple[int, int]:
    """``(sent, dense)`` per rank, averaged over ranks as ``metrics.json`` has it, predicted from
    each rank's gradient shapes; every replica group here has 2 ranks, so a ring all-reduce
    sends its payload once."""
    config, sent, dense = HOOKS[hook], 0, 0
    for rank in ranks:
        shapes = rank[hook]["shapes"]
        dense_step = 4 * sum(math.prod(s) for s in shapes)
        if config.name == "powersgd":
            compressed_step = 4 * sum(powersgd_elements(s, config.powersgd_rank) for s in shapes)
            plain = config.powersgd_start_step
            sent += plain * dense_step + (STEPS_E2E - plain) * compressed_step
        else:
            sent += STEPS_E2E * dense_step // (2 if config.name == "fp16" else 1)
        dense += STEPS_E2E * dense_step
    return round(sent / len(ranks)), round(dense / len(ranks))


@pytest.mark.parametrize("mp_mode, world", [("embedding", 2), ("pipeline", 4)])
def test_training_with_pytorch_hooks(mp_mode, world, tmp_path):
    """Embedding mode: the tower's DDP, 2 ranks; pipeline mode: 2 replicas of 2 stages, each
    stage's dense gradients over its replica group. The hooks compress dense gradients only:
    tables exchange the rows they touched, uncompressed, whatever the hook."""
    ranks = run_ranks(world, train_with_each_hook, mp_mode, tmp_dir=tmp_path)
    runs = ranks[0]
    for hook, run in runs.items():
        metrics = run["metrics"]
        assert (
            metrics["dp_tower_bytes_sent"],
            metrics["dp_tower_bytes_dense"],
        ) == predicted_dp_bytes(ranks, hook)
        assert metrics["dp_tables_ratio"] == 1.0 and metrics["dp_tables_bytes_sent"] > 0
    dense, fp16, powersgd = runs["dense"], runs["fp16"], runs["powersgd"]
    assert fp16["metrics"]["dp_tower_ratio"] == 2.0
    assert powersgd["metrics"]["dp_tower_ratio"] > 1.0

    torch.testing.assert_close(fp16["losses"], dense["losses"], rtol=0, atol=1e-4)
    # PowerSGD all-reduces plainly for powersgd_start_step steps: the loss after them is dense's.
    start = HOOKS["powersgd"].powersgd_start_step
    assert powersgd["losses"][: start + 1] == dense["losses"][: start + 1]
    assert powersgd["losses"][start + 1 :] != dense["losses"][start + 1 :]
