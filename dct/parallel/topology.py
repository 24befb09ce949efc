"""The DP x MP grid of ranks, validated once and passed explicitly.

Rank ``r`` sits at ``(dp_rank, mp_rank) = divmod(r, mp_size)``. An *MP group* is ``mp_size``
consecutive ranks that share out the embedding tables between them; the *replica group* of a
rank holds the ``dp_size`` ranks with the same ``mp_rank``, which own copies of the same tables.

The groups come from ``torch.distributed.device_mesh.init_device_mesh`` rather than fairscale's
``initialize_model_parallel``: the mesh is an object we hold and pass around, while fairscale keeps
its groups in module globals (one grid per process, reachable from anywhere) and is built around
Megatron-style tensor parallelism that this grid does not need.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from dct.config import ConfigError, RunConfig, model_parallel_size
from dct.config.checks import check_mp_size, check_tables_per_rank


@dataclass(frozen=True)
class GridShape:
    """The grid's sizes; constructing one checks that it can exist. ``whole_tables``: every
    table lives whole on one MP rank, so each rank needs one (``parallel.sharding=table``)."""

    world_size: int
    mp_size: int
    num_tables: int
    whole_tables: bool = True

    def __post_init__(self) -> None:
        check_mp_size(self.mp_size, self.world_size)
        check_tables_per_rank(self.mp_size, self.num_tables, self.whole_tables)

    @property
    def dp_size(self) -> int:
        return self.world_size // self.mp_size


def grid_shape(cfg: RunConfig, world_size: int) -> GridShape:
    """The grid ``cfg`` asks of ``world_size`` ranks."""
    whole = cfg.parallel.mp_mode == "embedding" and cfg.parallel.sharding == "table"
    return GridShape(world_size, model_parallel_size(cfg), len(cfg.data.cardinalities), whole)


class Topology:
    """The process groups of one rank in the grid.

    Example::

        topology = Topology(GridShape(world_size=4, mp_size=2, num_tables=26), device_type="cpu")
        topology.mp_group        # this rank and its MP peers
        topology.replica_group   # the ranks holding copies of this rank's tables
    """

    def __init__(self, shape: GridShape, device_type: str) -> None:
        if dist.get_world_size() != shape.world_size:
            raise ConfigError(
                f"the grid expects {shape.world_size} ranks but {dist.get_world_size()} started"
            )
        self.shape = shape
        self.rank = dist.get_rank()
        self.dp_rank, self.mp_rank = divmod(self.rank, shape.mp_size)
        self.mesh: DeviceMesh = init_device_mesh(
            device_type, (shape.dp_size, shape.mp_size), mesh_dim_names=("dp", "mp")
        )
        self.world_group: dist.ProcessGroup = dist.group.WORLD
        self.mp_group: dist.ProcessGroup = self.mesh.get_group("mp")
        self.replica_group: dist.ProcessGroup = self.mesh.get_group("dp")

    @property
    def world_size(self) -> int:
        return self.shape.world_size

    @property
    def mp_size(self) -> int:
        return self.shape.mp_size

    @property
    def dp_size(self) -> int:
        return self.shape.dp_size
