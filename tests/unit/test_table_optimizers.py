"""Table optimizers on row gradients against references on the dense gradient: ``torch.optim``'s
SGD and Adagrad, and row-wise Adagrad written out here entry by entry."""

from __future__ import annotations

import pytest
import torch

from dct.embedding.rows import RowGradient
from dct.embedding.table import SparseTable
from dct.embedding.table_optimizers import TableOptimizer
from models.sparse_arch import build_table

ROWS, DIM, LR, EPS = 30, 3, 0.1, 1e-8


def row_gradients(steps: int) -> list[RowGradient]:
    """A few touched rows a step, some touched again later, one step touching none."""
    g = torch.Generator().manual_seed(0)
    grads = []
    for step in range(steps):
        count = 0 if step == 2 else 5
        rows = torch.randperm(ROWS, generator=g)[:count].sort().values
        grads.append(RowGradient(rows, torch.randn(count, DIM, generator=g)))
    return grads


def table() -> SparseTable:
    return build_table(ROWS, DIM, seed=1, table_index=0)


def rowwise_reference(weight: torch.Tensor, grads: list[RowGradient]) -> torch.Tensor:
    weight, state = weight.clone(), torch.zeros(ROWS)
    for grad in grads:
        for r, g in zip(grad.rows.tolist(), grad.values):
            state[r] += (g**2).mean()
            weight[r] -= LR * g / (state[r].sqrt() + EPS)
    return weight


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rowwise_adagrad"])
def test_updates_equal_the_reference(name):
    grads = row_gradients(6)
    sparse = table()
    start = sparse.weight.detach().clone()
    optimizer = TableOptimizer([sparse], name, LR, EPS)
    for grad in grads:
        optimizer.step([grad])
    if name == "rowwise_adagrad":
        expected = rowwise_reference(start, grads)
    else:
        dense = torch.nn.Parameter(start.clone())
        reference = (
            torch.optim.SGD([dense], lr=LR)
            if name == "sgd"
            else torch.optim.Adagrad([dense], lr=LR, eps=EPS)
        )
        for grad in grads:
            dense.grad = grad.to_dense(ROWS)
            reference.step()
        expected = dense.detach()
    torch.testing.assert_close(sparse.weight.detach(), expected, rtol=1e-6, atol=1e-7)
    untouched = sorted(set(range(ROWS)) - {r for g in grads for r in g.rows.tolist()})
    assert torch.equal(sparse.weight.detach()[untouched], start[untouched])


def test_state_round_trips_and_names_its_optimizer():
    grads = row_gradients(4)
    first, second = table(), table()
    a = TableOptimizer([first], "rowwise_adagrad", LR)
    a.step([grads[0]])
    b = TableOptimizer([second], "rowwise_adagrad", LR)
    b.load_state_dict(a.state_dict())
    second.weight.data.copy_(first.weight.data)
    for grad in grads[1:]:
        a.step([grad])
        b.step([grad])
    assert torch.equal(first.weight, second.weight)
    with pytest.raises(ValueError, match="adagrad table optimizer's state loaded into sgd"):
        TableOptimizer([table()], "sgd", LR).load_state_dict(a.state_dict())
