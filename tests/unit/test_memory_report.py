"""A rank's training state counted storage by storage, against the sizes written out by hand."""

from __future__ import annotations

import torch
from torch import nn

from dct.config import OptimConfig
from dct.embedding.table import SparseTable
from dct.train.memory_report import peak_rss_bytes, state_bytes
from dct.train.optimizers import Optimizers


class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = SparseTable(1000, 8)
        self.linear = nn.Linear(8, 4)


def test_state_counts_parameters_and_both_optimizers_once() -> None:
    model = TinyModel()
    linear = (8 * 4 + 4) * 4
    table = 1000 * 8 * 4
    for dense, tables, expected in [
        ("sgd", "sgd", table + linear),
        ("adagrad", "rowwise_adagrad", table + 1000 * 4 + 2 * linear),
        ("adagrad", "adagrad", 2 * table + 2 * linear),
    ]:
        cfg = OptimConfig(name=dense, tables=tables)
        optimizers = Optimizers(cfg, 0.1, model.linear.parameters(), [model.table])
        assert state_bytes(model, optimizers) == expected


def test_peak_rss_covers_a_buffer_just_touched() -> None:
    buffer = torch.ones(64 << 20, dtype=torch.uint8)
    assert peak_rss_bytes() >= buffer.numel()
