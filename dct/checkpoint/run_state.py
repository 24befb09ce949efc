"""What a checkpoint holds, named so that it loads on any grid.

Entries (a flat DCP state dict, ``dct.checkpoint.dcp_io``):

- ``model/<name>``: every parameter under its name in ``models.dlrm.DLRM``; a table is one
  ``[rows, dim]`` tensor of which each rank writes the row blocks it holds (replica 0 only);
- ``optim/dense/<name>/<key>``: the dense optimizer's state per parameter (Adagrad's ``sum``
  and ``step``); ``optim/tables/<t>``: the table optimizer's state, row blocks like the table;
- ``rank/<r>``: what belongs to rank ``r`` alone: its DCT-DP states (residuals, thresholds,
  step, counters; table residual rows as table rows), DCT-MP's counters, its byte meter, RNG
  state, density-band counts and ``TrainProgress`` (losses, step times, evaluations);
- ``meta``: the format, step, model shape, optimizers and the grid it was written on.

Loading on the grid it was written on restores every rank exactly; on another grid the tables
and optimizer states are resharded by DCP, rank ``r`` continues old rank ``r % old_world``'s
record, and DCT-DP state is handed over as ``dct.checkpoint.regrid`` says.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from dct.checkpoint.dcp_io import RowBlocks
from dct.checkpoint.regrid import (
    global_table_state,
    local_table_state,
    owed_mass,
    regrid_dense,
    regrid_tables,
)
from dct.checkpoint.store import CheckpointError
from dct.comm.dct_mp import TopKRows
from dct.comm.meter import ByteMeter, ChannelBytes
from dct.config import RunConfig
from dct.parallel.hybrid import HybridDLRM
from dct.parallel.pipeline_model import PipelineDLRM
from dct.parallel.topology import Topology
from dct.train.density_report import DensityBand
from dct.train.progress import TrainProgress
from dct.train.step_optimizers import Optimizers

log = logging.getLogger(__name__)

FORMAT = 1
META = "meta"


def fingerprint(cfg: RunConfig) -> dict[str, Any]:
    """The settings a checkpoint's tensors must match, by their config names."""
    return {
        "data.num_dense": cfg.data.num_dense,
        "data.cardinalities": list(cfg.data.cardinalities),
        "model.embedding_dim": cfg.model.embedding_dim,
        "model.bottom_mlp": list(cfg.model.bottom_mlp),
        "model.top_mlp": list(cfg.model.top_mlp),
        "optim.name": cfg.optim.name,
        "optim.tables": cfg.optim.tables,
    }


def check_meta(meta: Any, cfg: RunConfig, source: Path) -> None:
    """Raise ``CheckpointError`` naming ``source`` unless ``meta`` is a dct checkpoint's that
    ``cfg`` can continue: the same model shape and optimizers, a step within ``train.steps``."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a dct checkpoint (format {FORMAT})")
    saved, mine = meta["fingerprint"], fingerprint(cfg)
    differ = [f"{k}={saved.get(k)} there, {v} here" for k, v in mine.items() if saved.get(k) != v]
    if differ:
        raise CheckpointError(
            f"{source} was written for another model: {'; '.join(differ)} "
            "(resume with the same settings, or train.resume=never)"
        )
    if meta["step"] > cfg.train.steps:
        raise CheckpointError(
            f"{source} is at step {meta['step']}, past train.steps={cfg.train.steps}"
        )


def rank_key(rank: int) -> str:
    return f"rank/{rank}"


class RunState:
    """The pieces of this rank's training a checkpoint holds, and how they are put back.

    Example::

        state = RunState(cfg, topology, model, optimizers, meter, band)
        dcp_io.save(state.save_entries(progress), path)
        ...
        entries = state.load_entries(meta)
        dcp_io.load(entries, path)
        progress = state.apply(entries, meta)
    """

    def __init__(
        self,
        cfg: RunConfig,
        topology: Topology,
        model: HybridDLRM | PipelineDLRM,
        optimizers: Optimizers,
        meter: ByteMeter,
        band: DensityBand,
    ) -> None:
        self.cfg, self.topology, self.model = cfg, topology, model
        self.optimizers, self.meter, self.band = optimizers, meter, band

    def grid(self) -> dict[str, Any]:
        """The grid and, in embedding mode, every MP rank's shards as ``[table, start, stop]``."""
        plan = getattr(self.model, "plan", None)
        return {
            "world_size": self.topology.world_size,
            "mp_size": self.topology.mp_size,
            "mp_mode": self.cfg.parallel.mp_mode,
            "cuts": list(self.cfg.parallel.cuts),  # empty outside pipeline mode (validate)
            "plan": None
            if plan is None
            else [[[s.table, s.start, s.stop] for s in shards] for shards in plan.shards],
        }

    def _tensor_entries(self, with_tables: bool) -> dict[str, Any]:
        entries: dict[str, Any] = {}
        names = {}
        for name, param in self.model.dense_named_parameters():
            entries[f"model/{name}"] = param.detach()
            names[id(param)] = name
        dense = self.optimizers.dense
        for param, state in ({} if dense is None else dense.state).items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    entries[f"optim/dense/{names[id(param)]}/{key}"] = value
        if not with_tables:
            return entries
        fused = self.model.fused
        states = fused.optimizer_states() if fused is not None else self.optimizers.tables.state
        rows = self.cfg.data.cardinalities
        weights, optim = defaultdict(list), defaultdict(list)
        blocks = self.model.table_blocks()
        for i, (shard, tensor) in enumerate(blocks):
            weights[shard.table].append((shard.start, tensor))
            if states:
                optim[shard.table].append((shard.start, states[i]))
        for prefix, parts in (
            ("model/sparse_arch.tables.{}.weight", weights),
            ("optim/tables/{}", optim),
        ):
            for table, held in parts.items():
                shape = (rows[table], *held[0][1].shape[1:])
                entries[prefix.format(table)] = RowBlocks(
                    [t for _, t in held], [start for start, _ in held], shape
                )
        return entries

    def save_entries(self, progress: TrainProgress) -> dict[str, Any]:
        """This rank's entries for a checkpoint at ``progress.step``."""
        entries = self._tensor_entries(with_tables=self.topology.dp_rank == 0)
        entries[rank_key(self.topology.rank)] = self._rank_record(progress)
        if self.topology.rank == 0:
            entries[META] = {
                "format": FORMAT,
                "step": progress.step,
                "fingerprint": fingerprint(self.cfg),
                "grid": self.grid(),
            }
        return entries

    def _rank_record(self, progress: TrainProgress) -> dict[str, Any]:
        shards = [shard for shard, _ in self.model.table_blocks()]
        dp = {}
        for name, state in self.model.dp_states.items():
            saved = state.state_dict()
            dp[name] = global_table_state(saved, shards) if name == "tables" else saved
        counter, dedup = _kept_counter(self.model), _dedup_counter(self.model)
        return {
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "meter": {k: [v.sent, v.dense] for k, v in self.meter.totals().items()},
            "dp": dp,
            "mp": None if counter is None else [counter.offered, counter.kept],
            "mp_dedup": None if dedup is None else [dedup.offered, dedup.kept],
            "band": self.band.state_dict(),
            "progress": progress.state_dict(),
        }

    def same_grid(self, meta: dict[str, Any]) -> bool:
        return meta["grid"] == self.grid()

    def load_entries(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Where loading writes: this rank's tensors (every replica), and the rank records it
        needs (its own on the same grid, every old rank's on another)."""
        entries = self._tensor_entries(with_tables=True)
        world = meta["grid"]["world_size"]
        ranks = [self.topology.rank] if self.same_grid(meta) else range(world)
        for rank in ranks:
            entries[rank_key(rank)] = None
        return entries

    def apply(self, loaded: dict[str, Any], meta: dict[str, Any]) -> TrainProgress:
        """Put back what ``load_entries`` loaded besides the tensors; the progress to go on from."""
        rank, old_world = self.topology.rank, meta["grid"]["world_size"]
        record = loaded[rank_key(rank % old_world)]
        torch.set_rng_state(record["rng"])
        if record["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(record["cuda_rng"])
        self.meter.restore({k: ChannelBytes(*v) for k, v in record["meter"].items()})
        self.band.load_state_dict(record["band"])
        for counter, saved in (
            (_kept_counter(self.model), record["mp"]),
            (_dedup_counter(self.model), record.get("mp_dedup")),
        ):
            if counter is not None and saved is not None:
                counter.offered, counter.kept = saved
        if self.same_grid(meta):
            dropped = self._restore_dp(record["dp"])
        else:
            old = [loaded[rank_key(r)]["dp"] for r in range(old_world)]
            dropped = self._regrid_dp(old, meta)
        if dropped and rank == 0:
            log.warning(
                "DCT-DP residuals with no replica to send them here (L1 mass %.4g) are dropped: "
                "DCT-DP is off for that part now, or this grid does not replicate it",
                dropped,
            )
        return TrainProgress.from_state_dict(record["progress"])

    def _restore_dp(self, saved: dict[str, Any]) -> float:
        """This rank's own DCT-DP states; the L1 mass of residuals no state here takes."""
        shards = [shard for shard, _ in self.model.table_blocks()]
        for name, state in self.model.dp_states.items():
            if name in saved:  # else DCT-DP was off when the checkpoint was written
                entry = saved[name]
                table = name == "tables"
                state.load_state_dict(local_table_state(entry, shards) if table else entry)
        return owed_mass([v for k, v in saved.items() if k not in self.model.dp_states])

    def _regrid_dp(self, old: list[dict[str, Any]], meta: dict[str, Any]) -> float:
        """DCT-DP states handed over from every old rank's; the L1 mass of residuals dropped."""
        topology, states = self.topology, self.model.dp_states
        dropped = 0.0
        for name in ("tables", "tower", "stage"):
            parts = [record.get(name) for record in old]
            if name == "tables" and name in states:
                new = regrid_tables(
                    parts,
                    meta["grid"]["mp_size"],
                    topology.rank,
                    topology.dp_rank,
                    topology.dp_size,
                    [shard for shard, _ in self.model.table_blocks()],
                    states["tables"].names,
                )
            elif name == "tower" and name in states:
                new = regrid_dense(parts, topology.rank, topology.world_size)
            else:  # no such part here, or a pipeline stage on another grid
                new = None
                dropped += owed_mass(parts)
            if new is not None:
                states[name].load_state_dict(new)
        return dropped


def _kept_counter(model: HybridDLRM | PipelineDLRM) -> Any:
    forward = model.codecs.forward
    return forward.counter if isinstance(forward, TopKRows) else None


def _dedup_counter(model: HybridDLRM | PipelineDLRM) -> Any:
    return getattr(model, "dedup_counter", None)
