"""DCT-DP on table row gradients across gloo ranks, against references.

- ``density=1.0`` against the uncompressed row exchange: the same averaged gradients every step.
- Error feedback loses nothing: over the steps, every rank's gradients sum to what the group
  averaged (times its size) plus what the residuals still hold, with and without rows flushed
  over the residual bound (pooled over the tables), which is never exceeded.
- Bytes against the uncompressed exchange of the same touched rows.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from dct.comm.dct_dp import DCTDPState
from dct.comm.dct_dp_tables import TableDCTDPState
from dct.comm.meter import ByteMeter
from dct.comm.sparse_rows import average_rows
from dct.embedding.rows import RowGradient
from tests.distributed.spawn import run_ranks

ROWS, DIM, STEPS = (40, 6, 25), 4, 12


def gradients(step: int, rank: int) -> list[RowGradient]:
    """Unequal touched rows per rank and table; rank 1 touches nothing of table 1 on even steps."""
    g = torch.Generator().manual_seed(1000 * step + rank)
    grads = []
    for t, rows in enumerate(ROWS):
        count = 0 if (t == 1 and rank == 1 and step % 2 == 0) else min(rows, 3 + 2 * rank + t)
        ids = torch.randperm(rows, generator=g)[:count].sort().values
        grads.append(RowGradient(ids, torch.randn(count, DIM, generator=g)))
    return grads


def state(density: float, max_rows: int, meter: ByteMeter) -> TableDCTDPState:
    dp = DCTDPState(process_group=None, density=density, update_every=5)
    return TableDCTDPState(dp, [f"t{t}" for t in range(len(ROWS))], ROWS, DIM, meter, max_rows)


def run(density: float, max_rows: int) -> dict:
    rank, meter = dist.get_rank(), ByteMeter()
    dct, fed, averaged, residual_rows = state(density, max_rows, meter), None, None, []
    reference = []
    for step in range(STEPS):
        grads = gradients(step, rank)
        dense = torch.stack([_pad(g, t) for t, g in enumerate(grads)])
        fed = dense if fed is None else fed + dense
        out = dct.average(grads)
        reference.append([_pad(g, t) for t, g in enumerate(average_rows(grads, None, ByteMeter()))])
        got = torch.stack([_pad(g, t) for t, g in enumerate(out)])
        averaged = got if averaged is None else averaged + got
        residual_rows.append(dct.residual.held)
        if density == 1.0:
            torch.testing.assert_close(got, torch.stack(reference[-1]))
    residual = torch.stack([_pad(dct.residual_of(t), t) for t in range(len(ROWS))])
    return {
        "fed": fed,
        "averaged": averaged,
        "residual": residual,
        "residual_rows": residual_rows,
        "flushed": dct.flushed_rows,
        "stats": dct.compression_stats(),
        "bytes": meter.totals()["dp"],
    }


def _pad(grad: RowGradient, table: int) -> torch.Tensor:
    """A table's dense gradient padded to the largest table, to stack tables."""
    dense = torch.zeros(max(ROWS), DIM)
    dense[: ROWS[table]] = grad.to_dense(ROWS[table])
    return dense


def test_density_one_equals_the_uncompressed_exchange(tmp_path):
    for result in run_ranks(2, run, 1.0, 1000, tmp_dir=tmp_path):
        assert result["stats"]["achieved_density"] == 1.0


def check_nothing_lost(results: list[dict]) -> None:
    world = len(results)
    fed = sum(r["fed"] for r in results)
    held = sum(r["residual"] for r in results)
    torch.testing.assert_close(world * results[0]["averaged"], fed - held, rtol=1e-5, atol=1e-5)


def test_error_feedback_loses_nothing(tmp_path):
    results = run_ranks(2, run, 0.1, 1000, tmp_dir=tmp_path)
    check_nothing_lost(results)
    for result in results:
        assert result["flushed"] == 0
        assert 0.05 < result["stats"]["achieved_density"] < 0.3
        assert result["bytes"].sent < result["bytes"].dense / 2


def test_residual_bound_flushes_rows_and_loses_nothing(tmp_path):
    results = run_ranks(2, run, 0.1, 3, tmp_dir=tmp_path)
    check_nothing_lost(results)
    for result in results:
        assert max(result["residual_rows"]) <= 3 * len(ROWS)  # the bound, pooled over tables
        assert result["flushed"] > 0
