"""A pipeline replica as the training loop sees it: the same face as ``HybridModel``.

Every rank builds the whole recommender from the seed (so stages start exactly as the
single-process model would), cuts it at ``cuts`` and keeps the stage of its MP rank. Every stage
reads the replica's whole batch; only the last one has a loss and predictions. With several
replicas, each stage's gradients are averaged over its replica group after every step, through
the same comm hooks DDP uses elsewhere (``dct.comm.grad_sync``), as ``GradientHooks`` chooses
(``dct.parallel.gradient_hooks``). The tables (in the stage holding them) hand over the rows a
batch touched instead, averaged over the replica group by exchanging only those rows,
thresholded by DCT-DP too when enabled (``dct.parallel.table_sync``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from dct.comm.codec import DENSE, CodecPair
from dct.comm.dct_dp import DCTDPState
from dct.comm.grad_sync import sync_gradients
from dct.comm.meter import ByteMeter
from dct.config.runtime_checks import check_cut_names
from dct.data.rank_batches import RankBatch
from dct.embedding.rows import RowGradient
from dct.embedding.table import SparseTable
from dct.parallel.gradient_hooks import GradientHooks
from dct.parallel.model_state import load_in_place, model_state_dict
from dct.parallel.pipeline import PipelineStage
from dct.parallel.sharding import Shard
from dct.parallel.table_sync import TableSync
from dct.parallel.topology import Topology
from models.recommender import Recommender
from models.stages import cut_names, split_model


class PipelineModel(nn.Module):
    """This rank's stage of a recommender pipelined over its MP group.

    Example::

        model = PipelineModel(DLRM(13, [512, 256, 64, 16], sizes, [512, 256], seed=0),
                             ["bottom_mlp.1"], topology, meter, device, microbatches=4)
        loss_sum = model.train_step(batch)  # then optimizer.step()
    """

    def __init__(
        self,
        model: Recommender,
        cuts: Sequence[str],
        topology: Topology,
        meter: ByteMeter,
        device: torch.device,
        codecs: CodecPair = DENSE,
        microbatches: int = 1,
        hooks: GradientHooks = GradientHooks(),
    ) -> None:
        super().__init__()
        check_cut_names(cuts, cut_names(model))
        stages = split_model(model, cuts)
        self.topology, self.meter, self.codecs = topology, meter, codecs
        self.microbatches = microbatches
        self.stage = stages[topology.mp_rank].to(device)
        self.pipeline = PipelineStage(stages, topology.mp_rank, topology.mp_group, meter, codecs)
        self.owned_features = list(range(model.sparse_arch.features.num_features))
        self.fused = None
        names = {id(p): name for name, p in model.named_parameters()}
        self._names = {id(p): names[id(p)] for p in self.stage.parameters()}
        self._table_index = {id(t): i for i, t in enumerate(model.sparse_arch.tables)}
        self.sync = None
        self.dp_states: dict[str, DCTDPState] = {}
        if topology.dp_size > 1:
            self.sync = hooks(self.stage, topology.replica_group, meter.part("tower"))
            if isinstance(self.sync[1], DCTDPState):
                self.dp_states["stage"] = self.sync[1]
        names = [f"tables.{t}" for t in range(len(self.tables))]
        self.table_sync = TableSync(
            self.tables, names, topology.replica_group, meter.part("tables"), hooks.dct_dp
        )
        if self.table_sync.state is not None:
            self.dp_states["tables"] = self.table_sync.state

    def train_step(self, batch: RankBatch) -> Tensor:
        """Forward and backward of the replica's batch; its summed loss on the last stage,
        zero elsewhere (so a sum over ranks counts every sample once)."""
        loss = self.pipeline.step(batch.local, self.microbatches)
        if self.sync is not None:
            sync_gradients(self.stage.parameters(), *self.sync)
        if loss is None:
            return torch.zeros((), device=batch.local.dense.device)
        return loss * batch.local.num_samples

    def predict(self, batch: RankBatch) -> Tensor | None:
        """Click probabilities on the last stage, ``None`` elsewhere."""
        logits = self.pipeline.predict(batch.local)
        return None if logits is None else torch.sigmoid(logits)

    @property
    def tables(self) -> list[SparseTable]:
        """The tables of this rank's stage (none unless it pools them)."""
        return [m for m in self.stage.modules() if isinstance(m, SparseTable)]

    def dense_parameters(self) -> list[nn.Parameter]:
        """What the dense optimizer steps: the stage's parameters but its tables'."""
        weights = {id(table.weight) for table in self.tables}
        return [p for p in self.stage.parameters() if id(p) not in weights]

    def dense_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """``dense_parameters`` under their names in the single-process model."""
        return [(self._names[id(p)], p) for p in self.dense_parameters()]

    def table_blocks(self) -> list[tuple[Shard, Tensor]]:
        """The stage's tables, whole, and their weights."""
        return [
            (Shard(self._table_index[id(t)], 0, t.num_rows, t.num_rows), t.weight.detach())
            for t in self.tables
        ]

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """Every parameter under its single-process name, tables as row blocks
        (``dct.parallel.model_state``): what a checkpoint holds of the model."""
        return model_state_dict(self.dense_named_parameters(), self.table_blocks())

    def load_state_dict(self, state: dict[str, Any]) -> None:  # type: ignore[override]
        """Take ``state`` (of ``state_dict()``'s keys; a checkpoint loads into it in place)."""
        load_in_place(self.state_dict(), state)

    def take_table_gradients(self) -> list[RowGradient]:
        """Each of the stage's tables' gradient since the last call, averaged over replicas."""
        return self.table_sync.take()
