"""What a checkpoint keeps of one rank alone: the parts of the training loop it hands to the
checkpoint manager besides the model and the optimizers, by their names in the rank's record
(``rank/<r>``, ``dct.checkpoint.meta``)."""

from __future__ import annotations

from torch.distributed.checkpoint.stateful import Stateful

from dct.checkpoint.dct_dp_states import DCTDPStates
from dct.checkpoint.random_state import RandomState
from dct.comm.dct_mp import TopKRows
from dct.comm.meter import ByteMeter
from dct.parallel.hybrid import HybridModel
from dct.parallel.parallel_model import ParallelModel
from dct.parallel.sharding import Shard
from dct.parallel.topology import Topology
from dct.train.density_report import DensityBand
from dct.train.progress import TrainProgress


def rank_states(
    model: ParallelModel,
    topology: Topology,
    shards: list[Shard],
    meter: ByteMeter,
    band: DensityBand,
    progress: TrainProgress,
) -> dict[str, Stateful]:
    """What a checkpoint keeps of this rank alone, by its name in the rank's record."""
    states: dict[str, Stateful] = {
        "rng": RandomState(),
        "meter": meter,
        "dp": DCTDPStates(model.dp_states, shards, topology),
        "band": band,
        "progress": progress,
    }
    forward = model.codecs.forward
    if isinstance(forward, TopKRows):
        states["mp"] = forward.counter
    if isinstance(model, HybridModel) and model.dedup_counter is not None:
        states["mp_dedup"] = model.dedup_counter
    return states
