"""The sparse table against ``nn.EmbeddingBag``: same pooled vectors, and a row gradient equal to
the dense gradient on the touched rows (zero elsewhere), with no table-sized ``.grad``."""

from __future__ import annotations

import torch
from torch import nn

from dct.embedding.table import SparseTable
from models.sparse_arch import build_table

ROWS, DIM = 50, 4


def tables() -> tuple[SparseTable, nn.EmbeddingBag]:
    sparse = build_table(ROWS, DIM, seed=0, table_index=0)
    dense = nn.EmbeddingBag(ROWS, DIM, mode="sum", include_last_offset=True)
    with torch.no_grad():
        dense.weight.copy_(sparse.weight)
    return sparse, dense


def bags(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bags of 0-3 ids (empty bags and repeated ids included)."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(0, 4, (9,), generator=g)
    ids = torch.randint(0, ROWS // 5, (int(sizes.sum()),), generator=g)  # few rows: repeats
    return ids, torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])


def test_forward_and_row_gradient_equal_the_dense_table():
    sparse, dense = tables()
    ids, offsets = bags(1)
    upstream = torch.randn(len(offsets) - 1, DIM, generator=torch.Generator().manual_seed(2))
    out_sparse, out_dense = sparse(ids, offsets), dense(ids, offsets)
    torch.testing.assert_close(out_sparse, out_dense, rtol=0, atol=0)
    (out_sparse * upstream).sum().backward()
    (out_dense * upstream).sum().backward()
    grad = sparse.take_row_gradient()
    assert sparse.weight.grad is None
    assert grad.rows.tolist() == sorted(set(ids.tolist()))
    torch.testing.assert_close(grad.to_dense(ROWS), dense.weight.grad)


def test_backwards_accumulate_until_taken():
    sparse, dense = tables()
    for seed in (3, 4):  # two micro-batches, one take
        ids, offsets = bags(seed)
        sparse(ids, offsets).pow(2).sum().backward()
        dense(ids, offsets).pow(2).sum().backward()
    torch.testing.assert_close(sparse.take_row_gradient().to_dense(ROWS), dense.weight.grad)
    assert sparse.take_row_gradient().rows.numel() == 0  # taken: nothing pending


def test_no_grad_lookup_records_nothing():
    sparse, _ = tables()
    with torch.no_grad():
        sparse(*bags(5))
    assert sparse.pending == []
