"""A rank's DCT-DP states as one checkpointable part, handed over to another grid on load.

A model wrapper's ``dp_states`` (``tables``, ``tower`` or ``stage``) each answer
``state_dict()``; here they are saved together, table residual rows as table rows so that
another grid can find them, and put back on the same grid, or rebuilt from every old rank's
states on another (``dct.checkpoint.regrid``).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from dct.checkpoint.regrid import (
    global_table_state,
    local_table_state,
    owed_mass,
    regrid_dense,
    regrid_tables,
)
from dct.parallel.sharding import Shard
from dct.parallel.topology import Topology

log = logging.getLogger(__name__)


class DCTDPStates:
    """``states`` by name, of a rank at ``topology`` holding the table ``shards`` (in the
    order of the tables state's layers).

    Example::

        dp = DCTDPStates(model.dp_states, [s for s, _ in model.table_blocks()], topology)
        saved = dp.state_dict()
        dp.load_state_dict(saved)  # the same grid
        dp.load_from_grid([saved_of_old_rank_0, ...], old_grid)  # another grid
    """

    def __init__(self, states: Mapping[str, Any], shards: Sequence[Shard], topology: Topology):
        self.states, self.shards, self.topology = states, list(shards), topology

    def state_dict(self) -> dict[str, Any]:
        return {
            name: global_table_state(state.state_dict(), self.shards)
            if name == "tables"
            else state.state_dict()
            for name, state in self.states.items()
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """This rank's own states, written on this grid."""
        for name, state in self.states.items():
            if name in saved:  # else DCT-DP was off when the checkpoint was written
                entry = saved[name]
                table = name == "tables"
                state.load_state_dict(local_table_state(entry, self.shards) if table else entry)
        self._report_dropped(owed_mass([v for k, v in saved.items() if k not in self.states]))

    def load_from_grid(self, old: Sequence[dict[str, Any] | None], grid: Mapping[str, Any]) -> None:
        """States handed over from every old rank's (``old[r]``, ``None`` where rank ``r``
        saved none) of a checkpoint written on ``grid``."""
        topology, states = self.topology, self.states
        dropped = 0.0
        for name in ("tables", "tower", "stage"):
            parts = [None if record is None else record.get(name) for record in old]
            if name == "tables" and name in states:
                new = regrid_tables(
                    parts,
                    grid["mp_size"],
                    topology.rank,
                    topology.dp_rank,
                    topology.dp_size,
                    self.shards,
                    states["tables"].names,
                )
            elif name == "tower" and name in states:
                new = regrid_dense(parts, topology.rank, topology.world_size)
            else:  # no such part here, or a pipeline stage on another grid
                new = None
                dropped += owed_mass(parts)
            if new is not None:
                states[name].load_state_dict(new)
        self._report_dropped(dropped)

    def _report_dropped(self, dropped: float) -> None:
        if dropped and self.topology.rank == 0:
            log.warning(
                "DCT-DP residuals with no replica to send them here (L1 mass %.4g) are dropped: "
                "DCT-DP is off for that part now, or this grid does not replicate it",
                dropped,
            )
