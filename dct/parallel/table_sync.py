"""Averaging a rank's table gradients over the replicas of its tables.

The gradients are the rows each table touched (``dct.embedding``). With DCT-DP enabled they go
through its thresholded exchange (``dct.comm.dct_dp_tables``), else through the uncompressed
exchange of the touched rows (``dct.comm.sparse_rows``); a group of one exchanges nothing.
"""

from __future__ import annotations

from typing import Sequence

import torch.distributed as dist

from dct.comm.dct_dp_tables import TableDCTDPState
from dct.comm.meter import ByteMeter
from dct.comm.sparse_rows import average_rows
from dct.config import DCTDPConfig
from dct.embedding.rows import RowGradient
from dct.embedding.table import SparseTable
from dct.parallel.dct_dp_config import dct_dp_state


class TableSync:
    """Example::

    sync = TableSync(tables, [f"tables.{t}" for t in owned], replica_group, meter, cfg.dct.dp)
    grads = sync.take()  # after backward; for the table optimizer
    """

    def __init__(
        self,
        tables: Sequence[SparseTable],
        names: Sequence[str],
        group: dist.ProcessGroup,
        meter: ByteMeter,
        dct_dp: DCTDPConfig | None = None,
    ) -> None:
        self.tables, self.group, self.meter = list(tables), group, meter
        self.state: TableDCTDPState | None = None
        if dct_dp is not None and dct_dp.enabled and dist.get_world_size(group) > 1 and tables:
            self.state = TableDCTDPState(
                dct_dp_state(dct_dp, group),
                names,
                [t.num_rows for t in self.tables],
                self.tables[0].dim,
                meter,
                dct_dp.table_residual_rows,
                self.tables[0].weight.device,
            )

    def take(self) -> list[RowGradient]:
        """Every table's gradient since the last take, averaged over the group."""
        grads = [table.take_row_gradient() for table in self.tables]
        if self.state is not None:
            return self.state.average(grads)
        return average_rows(grads, self.group, self.meter)
