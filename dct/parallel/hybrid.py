"""Embedding mode: a recommender's tables sharded over the MP group, its dense part data-parallel.

One step on rank ``r`` (global batch ``B``, ``b = B / world_size`` samples per rank):

1. its shards (whole tables, or row blocks of a table cut by the planner,
   ``dct.parallel.sharding``) pool the ids of all ``mp_size * b`` samples of its MP group, a row
   block only the ids in its rows;
2. an all-to-all hands every rank all features' pooled vectors for its own ``b`` samples (a
   cut table's partial sums, which it adds; a mean-pooled feature's sum, which it divides by
   the bag's length: ``models.feature_tables``);
3. the dense tower (DDP over the world) turns them into logits for those samples;
4. after backward, each table's gradient is the rows it touched; replicas of a shard
   (``dp_size > 1``) average them by exchanging only those rows (``dct.parallel.table_sync``).

Gradient scale, which the reference DLRM gets wrong: each rank's loss is a mean over its own
``b`` samples, so a table's gradient arriving through the all-to-all is the sum of ``mp_size``
such means. Scaling it by ``1 / mp_size`` and averaging over the ``dp_size`` replicas gives the
mean over the global batch, exactly what single-process training computes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dct.comm.all_to_all import RowExchange, all_to_all_rows
from dct.comm.codec import DENSE, CodecPair
from dct.comm.dct_mp import KeptCounter
from dct.comm.dedup_all_to_all import DedupRows, all_to_all_dedup
from dct.comm.meter import ByteMeter
from dct.data.batch import SparseFeatures
from dct.data.rank_batches import RankBatch
from dct.embedding.fused import FusedTables
from dct.embedding.rows import RowGradient
from dct.embedding.table import SparseTable
from dct.parallel.embedding_dedup import pool_dedup
from dct.parallel.gradient_hooks import GradientHooks
from dct.parallel.model_state import load_in_place, model_state_dict
from dct.parallel.sharding import Shard, ShardingPlan
from dct.parallel.table_shard import TableShard, shard_name, slot_features
from dct.parallel.table_sync import TableSync
from dct.parallel.topology import Topology
from models.feature_tables import FeatureTables, mean_scale
from models.recommender import DenseArch


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.factor, None


class HybridModel(nn.Module):
    """A recommender across a DP x MP grid; each rank computes logits for its own samples.

    Initialisation matches the single-process model (``models.recommender.Recommender``) with
    the same seed on any grid, so every rank already holds identical weights. The dense part
    (``dense_tower``, any ``models.recommender.DenseArch``) is under DDP with the comm hook
    ``hooks`` chooses (``dct.parallel.gradient_hooks``); ``features`` says which table each
    feature looks up and how its bag is pooled (default: a table per feature, summed). The
    tables are not in a DDP: their gradients are the rows a batch touched
    (``take_table_gradients``), thresholded by DCT-DP too when ``hooks`` enables it; with
    ``fused`` (unreplicated tables only) FBGEMM's kernel updates them inside backward and there
    are none. ``plan`` places the tables (``dct.parallel.sharding``). ``dp_states`` holds the
    DCT-DP states by name (``tables``, ``tower``; a group of one has none) for checkpoints and
    reporting.

    Example::

        plan = plan_sharding(table_sizes, topology.mp_size, bytes_per_row("sgd", 16))
        model = HybridModel(DLRM(...).dense_tower, plan, 16, seed=0, topology=topology,
                            meter=meter, device=device)
        logits = model(local_dense, group_sparse.features(model.owned_features))
    """

    def __init__(
        self,
        dense_tower: DenseArch,
        plan: ShardingPlan,
        dim: int,
        seed: int,
        topology: Topology,
        meter: ByteMeter,
        device: torch.device,
        codecs: CodecPair = DENSE,
        hooks: GradientHooks = GradientHooks(),
        fused: tuple[str, float, float] | None = None,
        dedup: bool = False,
        features: FeatureTables | None = None,
    ) -> None:
        super().__init__()
        self.topology, self.meter, self.codecs, self.dim = topology, meter, codecs, dim
        self.dedup_counter = KeptCounter() if dedup else None
        self.plan = plan
        if features is None:
            features = FeatureTables.one_per_feature(plan.table_sizes)
        self.features = features
        self.shard = TableShard(plan.shards[topology.mp_rank], features, dim, seed, device, fused)
        self.owned_features = self.shard.slot_features
        self.dense_tower, tower_state = hooks.data_parallel(
            dense_tower.to(device), topology.world_group, meter.part("tower"), device
        )
        self.table_sync = TableSync(
            self.tables,
            [shard_name(s) for s in self.shard.shards],
            topology.replica_group,
            meter.part("tables"),
            hooks.dct_dp,
        )
        states = {"tables": self.table_sync.state, "tower": tower_state}
        self.dp_states = {name: state for name, state in states.items() if state is not None}
        # Arriving slots (per source rank, per shard and feature) in feature order: each
        # feature's first slot, then the other row blocks' partial sums, added to their features.
        self.slots = [slot_features(shards, features) for shards in plan.shards]
        arrival = [f for slots in self.slots for f in slots]
        first = [arrival.index(f) for f in range(features.num_features)]
        extra = [i for i in range(len(arrival)) if i not in first]
        for name, values in (
            ("first_slot", first),
            ("extra_slot", extra),
            ("extra_feature", [arrival[i] for i in extra]),
        ):
            self.register_buffer(name, torch.tensor(values, device=device), persistent=False)

    def train_step(self, batch: RankBatch) -> Tensor:
        """Forward and backward of this rank's samples; returns their summed loss, detached."""
        local = batch.local
        logits = self(local.dense, batch.group_sparse, self._scale(local.sparse))
        loss = nn.functional.binary_cross_entropy_with_logits(logits, local.labels)
        loss.backward()
        return loss.detach() * local.num_samples

    def predict(self, batch: RankBatch) -> Tensor:
        """Click probabilities of this rank's samples."""
        local = batch.local
        return torch.sigmoid(self(local.dense, batch.group_sparse, self._scale(local.sparse)))

    def _scale(self, local_sparse: SparseFeatures) -> Tensor | None:
        """What the arrived sums are multiplied by for mean pooling (``None``: all summed)."""
        return mean_scale(local_sparse.offsets, self.features.mean)

    @property
    def tables(self) -> list[SparseTable]:
        """This rank's tables, in ``owned_tables`` order (none with the fused kernel, which
        updates its rows itself)."""
        return list(self.shard.tables)

    def dense_parameters(self) -> list[nn.Parameter]:
        """What the dense optimizer steps: the tower's parameters."""
        return list(self.dense_tower.parameters())

    def dense_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The tower's parameters under their names in the single-process model."""
        tower = getattr(self.dense_tower, "module", self.dense_tower)
        return [(f"dense_tower.{name}", p) for name, p in tower.named_parameters()]

    def table_blocks(self) -> list[tuple[Shard, Tensor]]:
        """This rank's shards and their weights (the tensors training updates)."""
        return list(zip(self.shard.shards, self.shard.weights()))

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """Every parameter under its single-process name, tables as row blocks
        (``dct.parallel.model_state``): what a checkpoint holds of the model."""
        return model_state_dict(self.dense_named_parameters(), self.table_blocks())

    def load_state_dict(self, state: dict[str, Any]) -> None:  # type: ignore[override]
        """Take ``state`` (of ``state_dict()``'s keys; a checkpoint loads into it in place)."""
        load_in_place(self.state_dict(), state)

    @property
    def fused(self) -> FusedTables | None:
        """FBGEMM's kernel holding this rank's shards, if it does."""
        return self.shard.fused

    def take_table_gradients(self) -> list[RowGradient]:
        """Each local table's gradient since the last call, averaged over its replicas."""
        return self.table_sync.take()

    def forward(
        self, dense: Tensor, group_sparse: SparseFeatures, scale: Tensor | None = None
    ) -> Tensor:
        """Logits for this rank's ``b`` samples.

        ``dense``: ``[b, num_dense]``, this rank's samples. ``group_sparse``: the ids of the
        owned slots' features (``owned_features``, in that order) for all ``mp_size * b``
        samples of the MP group, ordered by MP rank. ``scale``: ``[b, features, 1]``, what each
        feature's pooled sum is multiplied by (``models.feature_tables.mean_scale`` of this
        rank's samples), if any feature is mean-pooled.
        """
        b = dense.shape[0]
        if self.dedup_counter is not None and self.topology.mp_size > 1:
            blocks = self._exchange_dedup(group_sparse, b)
        else:
            blocks = self._exchange(group_sparse, b)
        arrived = torch.cat(blocks, dim=1).view(b, -1, self.dim)
        embeddings = arrived.index_select(1, self.first_slot)
        if self.extra_slot.numel():
            parts = arrived.index_select(1, self.extra_slot)
            embeddings = embeddings.index_add(1, self.extra_feature, parts)
        if scale is not None:
            embeddings = embeddings * scale
        return self.dense_tower(dense, embeddings)

    def _exchange(self, group_sparse: SparseFeatures, b: int) -> tuple[Tensor, ...]:
        """Every sample's pooled row, sent as it is (through the codecs)."""
        mp_size = self.topology.mp_size
        pooled = _ScaleGrad.apply(self.shard(group_sparse), 1.0 / mp_size)
        exchange = RowExchange(
            send_rows=[b] * mp_size,
            recv_rows=[b] * mp_size,
            widths=[len(slots) * self.dim for slots in self.slots],
            group=self.topology.mp_group,
            meter=self.meter,
            channel="mp",
            codecs=self.codecs,
        )
        return all_to_all_rows(pooled, exchange)

    def _exchange_dedup(self, group_sparse: SparseFeatures, b: int) -> tuple[Tensor, ...]:
        """Each distinct pooled vector once, with a sample index (``dct.mp.dedup``)."""
        mp_size = self.topology.mp_size
        sent = pool_dedup(
            self.shard.restrict(group_sparse),
            mp_size,
            self.dim,
            self.shard.pool,
            self.dedup_counter,
            self.topology.mp_rank,
        )
        rows = _ScaleGrad.apply(sent.rows, 1.0 / mp_size)
        return all_to_all_dedup(
            DedupRows(rows, sent.index, sent.counts),
            samples=[b] * mp_size,
            tables=[len(slots) for slots in self.slots],
            dim=self.dim,
            group=self.topology.mp_group,
            meter=self.meter,
            codecs=self.codecs,
        )
