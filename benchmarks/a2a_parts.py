"""What the compressed all-to-all's parts cost on one core, at the default model's shapes.

A step of ``experiment=a2a_compressed parallel.mp_size=2`` (global batch 1,024, 13 tables a
rank, dim 16) codes up to 13,312 rows of 16 values, groups 13,312 bag keys and packs a
``[512, 13]`` sample index per peer. This times each part, and the alternatives that
docs/dct_dp.md ("The compressed all-to-all") weighs, in microseconds (median of 7 runs of
200 calls each)::

    OMP_NUM_THREADS=1 python benchmarks/a2a_parts.py
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import torch

from dct.compression.bit_pack import bits_for, pack_columns, unpack_columns
from dct.compression.quantize import dequantize, quantize

ROWS, DIM, SAMPLES, TABLES = 13_312, 16, 512, 13


def micros(work: Callable[[], object], calls: int = 200) -> float:
    work()
    runs = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(calls):
            work()
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(runs)


def pairwise_min(x: torch.Tensor) -> torch.Tensor:
    while x.shape[1] > 1:
        half = x.shape[1] // 2
        x = torch.minimum(x[:, :half], x[:, half:])
    return x


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(ROWS, DIM, generator=g)
    packed = quantize(rows, 4)
    # Zipf-like ids per (destination, table) block, as the grouping's keys
    ids = (torch.rand(ROWS, generator=g) ** 3 * 1e6).long()
    keys = torch.arange(ROWS) // SAMPLES * 10**7 + ids
    counts = torch.randint(1, SAMPLES + 1, (TABLES,), generator=g).tolist()
    index = torch.stack([torch.randint(0, c, (SAMPLES,), generator=g) for c in counts], 1)
    bits = [bits_for(c) for c in counts]
    index_bytes = pack_columns(index, bits)
    parts = {
        "int4 quantize": lambda: quantize(rows, 4),
        "int4 dequantize": lambda: dequantize(packed, DIM, 4, torch.float32),
        "row-wise amin": lambda: rows.amin(dim=1),
        "row-wise min, pairwise tree": lambda: pairwise_min(rows),
        "row-wise aminmax": lambda: torch.aminmax(rows, dim=1),
        "grouping keys: torch.unique": lambda: torch.unique(keys, return_inverse=True),
        "grouping keys: numpy argsort": lambda: np.argsort(keys.numpy()),
        "index pack (one peer)": lambda: pack_columns(index, bits),
        "index unpack (one peer)": lambda: unpack_columns(index_bytes, SAMPLES, bits),
    }
    for name, work in parts.items():
        print(f"{name:32s} {micros(work):8.1f} us")


if __name__ == "__main__":
    main()
