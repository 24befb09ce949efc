"""What each rank holds: its training state's bytes next to its peak resident memory.

*State* is the parameters (tables included) plus every optimizer's state tensors: the least a
rank must hold to train. *Peak RSS* is the process's high-water mark (``getrusage``), which
adds the interpreter, libraries, activations and transient buffers. Their ratio per rank says
how much a run spends beyond its state; ``metrics.json`` reports the worst rank.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor, nn

from dct.comm.collectives import all_reduce_sum
from dct.comm.meter import ByteMeter
from dct.parallel.topology import Topology
from dct.train.step_optimizers import Optimizers


def _tensor_bytes(tensors: Iterable[Tensor]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def state_bytes(model: nn.Module, optimizers: Optimizers) -> int:
    """Parameters and optimizer state of this rank, each storage counted once."""
    tensors = list(model.parameters()) + list(optimizers.tables.state)
    if optimizers.dense is not None:
        for per_param in optimizers.dense.state.values():
            tensors += [v for v in per_param.values() if isinstance(v, Tensor) and v.dim() > 0]
    return _tensor_bytes(tensors)


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass(frozen=True)
class MemoryReport:
    """Worst rank by each measure: ``rss_over_state`` is the largest per-rank ratio."""

    state_bytes: int
    peak_rss_bytes: int
    rss_over_state: float

    def summary(self) -> dict[str, object]:
        return {
            "state_bytes": self.state_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
            "rss_over_state": self.rss_over_state,
        }


def memory_report(
    model: nn.Module,
    optimizers: Optimizers,
    topology: Topology,
    meter: ByteMeter,
    device: torch.device,
) -> MemoryReport:
    """Gathers every rank's state and peak RSS (collective over the world group)."""
    table = torch.zeros(topology.world_size, 2, dtype=torch.float64, device=device)
    table[topology.rank] = torch.tensor(
        [state_bytes(model, optimizers), peak_rss_bytes()], dtype=torch.float64
    )
    all_reduce_sum(table, topology.world_group, meter)
    state, rss = table[:, 0], table[:, 1]
    return MemoryReport(
        state_bytes=int(state.max().item()),
        peak_rss_bytes=int(rss.max().item()),
        rss_over_state=(rss / state.clamp(min=1.0)).max().item(),
    )
