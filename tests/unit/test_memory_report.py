"""A rank's training state counted storage by storage, against the sizes written out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dct.config import OptimConfig
from dct.embedding.table import SparseTable
from dct.train.memory_report import peak_rss_bytes, state_bytes
from dct.train.step_optimizers import Optimizers


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
        optimizers = Optimizers(cfg, 0.1, model.linear.named_parameters(), [model.table])
        assert state_bytes(model, optimizers) == expected


def kernel_high_water_mark() -> int:
    """The kernel's own account of this process's peak RSS (``VmHWM``), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_peak_rss_is_the_kernels_high_water_mark_in_bytes() -> None:
    buffer = torch.ones(256 << 20, dtype=torch.uint8)  # touched: resident
    expected = kernel_high_water_mark()
    assert buffer.numel() < expected
    assert abs(peak_rss_bytes() - expected) <= 8 << 20
