"""The tables' residual in slots, against a dense residual of the same rows.

Random steps touch random rows; a random part of each accumulator is "sent". The slot residual
must hold exactly what a table-sized residual would (nothing lost, nothing invented), never more
rows than its bound, hand back to be sent whole the touched rows with the largest residual when
the bound is reached, and reload what it saved.
"""

from __future__ import annotations

import pytest
import torch

from dct.compression.row_residual import RowResidual

ROWS, DIM = 200, 3


def run(max_rows: int, steps: int = 40) -> tuple[RowResidual, torch.Tensor, int]:
    """The residual, the dense reference of what it must hold, and the rows sent whole."""
    g = torch.Generator().manual_seed(max_rows)
    residual = RowResidual(ROWS, DIM, max_rows, torch.device("cpu"))
    dense = torch.zeros(ROWS, DIM)
    whole_rows = 0
    for _ in range(steps):
        rows = torch.randperm(ROWS, generator=g)[: int(torch.randint(1, 40, (1,), generator=g))]
        rows = rows.sort().values
        grad = torch.randn(rows.numel(), DIM, generator=g)
        acc, slots = residual.accumulate(rows, grad)
        torch.testing.assert_close(acc, dense[rows] + grad, rtol=0, atol=0)
        acc[torch.rand(acc.shape, generator=g) < 0.3] = 0.0  # what was sent
        acc[0] = 0.0  # a row left with nothing gives its slot back
        whole = residual.overflow(slots, acc)
        if whole.numel():
            mass = acc.abs().sum(dim=1)
            others = torch.ones(rows.numel(), dtype=torch.bool)
            others[whole] = False
            assert mass[whole].min() >= mass[others].max()  # the largest go out whole
            acc[whole] = 0.0
            whole_rows += whole.numel()
        residual.keep(rows, slots, acc)
        dense[rows] = acc
        assert residual.held <= max_rows
        assert residual.held == int((dense.abs().sum(dim=1) > 0).sum())
    return residual, dense, whole_rows


@pytest.mark.parametrize("max_rows", [1000, 30, 0])
def test_slots_hold_what_a_dense_residual_holds(max_rows):
    residual, dense, whole_rows = run(max_rows)
    held = residual.rows_between(0, ROWS)
    torch.testing.assert_close(held.to_dense(ROWS), dense, rtol=0, atol=0)
    assert (whole_rows > 0) == (max_rows < 200)


def test_a_saved_residual_loads_into_a_fresh_one_by_table():
    residual, dense, _ = run(1000)
    fresh = RowResidual(ROWS, DIM, 1000, torch.device("cpu"))
    for start, stop in [(0, 120), (120, ROWS)]:  # two tables laid end to end
        fresh.load(start, residual.rows_between(start, stop))
    torch.testing.assert_close(fresh.rows_between(0, ROWS).to_dense(ROWS), dense, rtol=0, atol=0)
    rows = torch.arange(ROWS)
    acc, _ = fresh.accumulate(rows, torch.zeros(ROWS, DIM))
    torch.testing.assert_close(acc, dense, rtol=0, atol=0)


def test_a_load_over_the_bound_is_sent_whole_as_its_rows_come_back():
    residual, dense, _ = run(1000)
    small = RowResidual(ROWS, DIM, 5, torch.device("cpu"))
    small.load(0, residual.rows_between(0, ROWS))
    assert small.held > 5
    rows = torch.arange(ROWS)
    acc, slots = small.accumulate(rows, torch.zeros(ROWS, DIM))
    whole = small.overflow(slots, acc)
    acc[whole] = 0.0
    small.keep(rows, slots, acc)
    assert small.held == 5
