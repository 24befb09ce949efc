"""Hybrid-parallel DLRM: embedding tables sharded over the MP group, the dense tower data-parallel.

One step on rank ``r`` (global batch ``B``, ``b = B / world_size`` samples per rank):

1. its tables pool the ids of all ``mp_size * b`` samples of its MP group;
2. an all-to-all hands every rank all tables' pooled vectors for its own ``b`` samples;
3. the dense tower (DDP over the world) turns them into logits for those samples.

Gradient scale, which the reference DLRM gets wrong: each rank's loss is a mean over its own
``b`` samples, so a table's gradient arriving through the all-to-all is the sum of ``mp_size``
such means. Scaling it by ``1 / mp_size`` and averaging over the ``dp_size`` replicas gives the
mean over the global batch, exactly what single-process training computes.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from dct.comm.all_to_all import RowExchange, all_to_all_rows
from dct.comm.codec import DENSE, CodecPair
from dct.comm.dct_dp import DCTDPState, dct_dp_hook
from dct.comm.dct_mp import dct_mp_codecs
from dct.comm.ddp_hooks import MeteredAllReduceState, metered_allreduce_hook
from dct.comm.meter import ByteMeter
from dct.comm.torch_hooks import (
    MeteredPowerSGDState,
    metered_fp16_hook,
    metered_powersgd_hook,
)
from dct.compression.wire_dtype import wire_dtype
from dct.config import DCTDPConfig, DCTMPConfig, DPHookConfig
from dct.data.batch import SparseFeatures
from dct.data.batching import RankBatch
from dct.parallel.sharding import assign_tables
from dct.parallel.topology import Topology
from models.dlrm import DenseTower, build_table


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.factor, None


class TableShard(nn.Module):
    """The tables one MP rank owns; pooled vectors side by side, ``[n, len(tables) * dim]``."""

    def __init__(
        self, table_indices: Sequence[int], table_sizes: Sequence[int], dim: int, seed: int
    ) -> None:
        super().__init__()
        self.table_indices = list(table_indices)
        self.tables = nn.ModuleList(
            build_table(table_sizes[t], dim, seed, t) for t in self.table_indices
        )

    def forward(self, sparse: SparseFeatures) -> Tensor:
        return torch.cat(
            [table(v, o) for table, v, o in zip(self.tables, sparse.values, sparse.offsets)],
            dim=1,
        )


def _data_parallel(
    module: nn.Module,
    group: Any,
    meter: ByteMeter,
    device: torch.device,
    dct_dp: DCTDPConfig | None,
    dp_hook: DPHookConfig | None,
    seed: int,
) -> tuple[nn.Module, DCTDPState | None]:
    """DDP over ``group`` with the comm hook ``gradient_hook`` picks; its state if DCT-DP's.

    A group of one needs no wrapper.
    """
    if torch.distributed.get_world_size(group) == 1:
        return module, None
    ddp = DistributedDataParallel(
        module,
        device_ids=[device.index] if device.type == "cuda" else None,
        process_group=group,
        init_sync=False,
    )
    hook, state = gradient_hook(module, group, meter, dct_dp, dp_hook, seed)
    ddp.register_comm_hook(state, hook)
    return ddp, state if isinstance(state, DCTDPState) else None


def gradient_hook(
    module: nn.Module,
    group: Any,
    meter: ByteMeter,
    dct_dp: DCTDPConfig | None = None,
    dp_hook: DPHookConfig | None = None,
    seed: int = 0,
) -> tuple[Callable, DCTDPState | MeteredPowerSGDState | MeteredAllReduceState]:
    """The comm hook and state that average ``module``'s gradients over ``group``: DCT-DP if
    enabled, else the ``dp_hook`` named (the metered all-reduce, PyTorch's fp16 cast or
    PowerSGD seeded with ``seed``, which every rank of the group must share)."""
    if dct_dp is not None and dct_dp.enabled:
        state = DCTDPState(
            process_group=group,
            density=dct_dp.density,
            update_every=dct_dp.update_every,
            warmup_steps=dct_dp.warmup_steps,
            value_dtype=dct_dp.value_dtype,
            guard_factor=dct_dp.guard_factor,
            guard_window=dct_dp.guard_window,
            threshold_sample_size=dct_dp.threshold_sample_size,
            module=module,
            meter=meter,
        )
        return dct_dp_hook, state
    name = "allreduce" if dp_hook is None else dp_hook.name
    if name == "fp16":
        return metered_fp16_hook, MeteredAllReduceState(group, meter)
    if name == "powersgd":
        state = MeteredPowerSGDState(
            group,
            meter,
            matrix_approximation_rank=dp_hook.powersgd_rank,
            start_powerSGD_iter=dp_hook.powersgd_start_step,
            random_seed=seed,
        )
        return metered_powersgd_hook, state
    return metered_allreduce_hook, MeteredAllReduceState(group, meter)


def mp_codecs(dct_mp: DCTMPConfig, segment: int | None = None) -> CodecPair:
    """The codec pair of a model-parallel transfer: DCT-MP if enabled, selecting per row or per
    ``segment`` of a row, else the dense identity."""
    if not dct_mp.enabled:
        return DENSE
    value_dtype = wire_dtype(dct_mp.value_dtype)
    grad_dtype = value_dtype if dct_mp.grad_dtype is None else wire_dtype(dct_mp.grad_dtype)
    return dct_mp_codecs(dct_mp.density, value_dtype, grad_dtype, segment)


def embedding_codecs(dct_mp: DCTMPConfig, dim: int) -> CodecPair:
    """The embedding all-to-all's pair: ``granularity=table`` selects within each table's
    ``dim`` values."""
    return mp_codecs(dct_mp, dim if dct_mp.granularity == "table" else None)


class HybridDLRM(nn.Module):
    """DLRM across a DP x MP grid; each rank computes logits for its own samples.

    Initialisation matches ``models.dlrm.DLRM`` with the same seed on any grid, so DDP's start-up
    broadcast is skipped (``init_sync=False``): every rank already holds identical weights.
    Both DDPs use the same comm hook: DCT-DP's with ``dct_dp`` enabled, else the one
    ``dp_hook`` names (PowerSGD seeded with ``seed``). ``dp_states`` holds the DCT-DP states by
    name (``tables``, ``tower``; a group of one has none) for checkpoints and reporting.

    Example::

        model = HybridDLRM(tower, table_sizes, dim=16, seed=0, topology=topology, meter=meter)
        logits = model(local_dense, group_sparse.tables(model.owned_tables))
    """

    def __init__(
        self,
        dense_tower: DenseTower,
        table_sizes: Sequence[int],
        dim: int,
        seed: int,
        topology: Topology,
        meter: ByteMeter,
        device: torch.device,
        codecs: CodecPair = DENSE,
        dct_dp: DCTDPConfig | None = None,
        dp_hook: DPHookConfig | None = None,
    ) -> None:
        super().__init__()
        self.topology, self.meter, self.codecs, self.dim = topology, meter, codecs, dim
        self.plan = assign_tables(table_sizes, topology.mp_size)
        self.owned_tables = self.plan[topology.mp_rank]
        shard = TableShard(self.owned_tables, table_sizes, dim, seed).to(device)
        self.shard, tables_state = _data_parallel(
            shard, topology.replica_group, meter, device, dct_dp, dp_hook, seed
        )
        self.dense_tower, tower_state = _data_parallel(
            dense_tower.to(device), topology.world_group, meter, device, dct_dp, dp_hook, seed
        )
        states = {"tables": tables_state, "tower": tower_state}
        self.dp_states = {name: state for name, state in states.items() if state is not None}
        arrival_order = [t for tables in self.plan for t in tables]
        self.register_buffer(
            "table_order",
            torch.tensor([arrival_order.index(t) for t in range(len(table_sizes))], device=device),
            persistent=False,
        )

    def train_step(self, batch: RankBatch) -> Tensor:
        """Forward and backward of this rank's samples; returns their summed loss, detached."""
        local = batch.local
        logits = self(local.dense, batch.group_sparse)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, local.labels)
        loss.backward()
        return loss.detach() * local.num_samples

    def predict(self, batch: RankBatch) -> Tensor:
        """Click probabilities of this rank's samples."""
        return torch.sigmoid(self(batch.local.dense, batch.group_sparse))

    def shard_tables(self) -> TableShard:
        """The local tables, unwrapped from DDP."""
        return self.shard.module if isinstance(self.shard, DistributedDataParallel) else self.shard

    def forward(self, dense: Tensor, group_sparse: SparseFeatures) -> Tensor:
        """Logits for this rank's ``b`` samples.

        ``dense``: ``[b, num_dense]``, this rank's samples. ``group_sparse``: the ids of the owned
        tables (``owned_tables``, in that order) for all ``mp_size * b`` samples of the MP group,
        ordered by MP rank.
        """
        b, mp_size = dense.shape[0], self.topology.mp_size
        pooled = _ScaleGrad.apply(self.shard(group_sparse), 1.0 / mp_size)
        exchange = RowExchange(
            send_rows=[b] * mp_size,
            recv_rows=[b] * mp_size,
            widths=[len(tables) * self.dim for tables in self.plan],
            group=self.topology.mp_group,
            meter=self.meter,
            channel="mp",
            codecs=self.codecs,
        )
        arrived = torch.cat(all_to_all_rows(pooled, exchange), dim=1)
        embeddings = arrived.view(b, -1, self.dim).index_select(1, self.table_order)
        return self.dense_tower(dense, embeddings)
