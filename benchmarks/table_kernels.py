"""Which embedding kernel: one rank's table work of a step, three implementations side by side.

A step is what one rank of a 2-rank, ``mp_size=2`` job does with its tables: pool 13 tables for
the MP group's 4,096 samples, backpropagate a gradient of the pooled output, update the touched
rows with row-wise Adagrad (the tables' default). Kernels:

- ``dct``: ``dct.embedding.SparseTable`` (row gradients, nothing table-sized) and
  ``TableOptimizer``, the kernel dct trains with;
- ``torch-sparse``: ``nn.EmbeddingBag(sparse=True)``, its sparse gradient coalesced, then the
  same row-wise Adagrad;
- ``fbgemm-fused``: FBGEMM's table-batched embedding with ``EXACT_ROWWISE_ADAGRAD`` fused into
  the backward pass (only where ``fbgemm_gpu`` imports, e.g. a venv with ``fbgemm-gpu-cpu``).

The kernels run in alternating rounds in one process (one thread), so a busy machine slows
them alike; the report is each kernel's median step and its ratio to ``dct``'s.

    OMP_NUM_THREADS=1 python benchmarks/table_kernels.py --rows 100000 --dim 64
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from dct.data.zipf import ZipfLaw
from dct.embedding.table_optimizers import TableOptimizer
from models.sparse_arch import build_table

LR, EPS = 0.05, 1e-8
Batch = list[torch.Tensor]


def dct_kernel(tables: int, rows: int, dim: int) -> Callable[[Batch, torch.Tensor], None]:
    embs = [build_table(rows, dim, seed=0, table_index=t) for t in range(tables)]
    optimizer = TableOptimizer(embs, "rowwise_adagrad", LR, EPS)

    def step(ids: Batch, offsets: torch.Tensor) -> None:
        pooled = torch.cat([emb(i, offsets) for emb, i in zip(embs, ids)], dim=1)
        pooled.backward(torch.ones_like(pooled))
        optimizer.step([emb.take_row_gradient() for emb in embs])

    return step


def torch_sparse_kernel(tables: int, rows: int, dim: int) -> Callable[[Batch, torch.Tensor], None]:
    embs = [
        nn.EmbeddingBag(rows, dim, mode="sum", sparse=True, include_last_offset=True)
        for _ in range(tables)
    ]
    state = [torch.zeros(rows) for _ in range(tables)]

    def step(ids: Batch, offsets: torch.Tensor) -> None:
        pooled = torch.cat([emb(i, offsets) for emb, i in zip(embs, ids)], dim=1)
        pooled.backward(torch.ones_like(pooled))
        with torch.no_grad():
            for emb, acc in zip(embs, state):
                grad = emb.weight.grad.coalesce()
                emb.weight.grad = None
                touched, values = grad.indices()[0], grad.values()
                summed = acc.index_select(0, touched).add_(values.square().mean(dim=1))
                acc.index_copy_(0, touched, summed)
                scale = summed.sqrt_().add_(EPS).unsqueeze(1)
                updated = emb.weight.index_select(0, touched).addcdiv_(values, scale, value=-LR)
                emb.weight.index_copy_(0, touched, updated)

    return step


def fbgemm_kernel(tables: int, rows: int, dim: int) -> Callable[[Batch, torch.Tensor], None]:
    from fbgemm_gpu.split_embedding_configs import EmbOptimType
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import (
        EmbeddingLocation,
        PoolingMode,
    )
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
        ComputeDevice,
        SplitTableBatchedEmbeddingBagsCodegen,
    )

    tbe = SplitTableBatchedEmbeddingBagsCodegen(
        [(rows, dim, EmbeddingLocation.HOST, ComputeDevice.CPU)] * tables,
        optimizer=EmbOptimType.EXACT_ROWWISE_ADAGRAD,
        learning_rate=LR,
        eps=EPS,
        pooling_mode=PoolingMode.SUM,
    )

    def step(ids: Batch, offsets: torch.Tensor) -> None:
        bags = offsets.numel() - 1
        flat_offsets = torch.cat(
            [offsets[:-1] + t * int(offsets[-1]) for t in range(len(ids))]
            + [torch.tensor([len(ids) * int(offsets[-1])])]
        )
        pooled = tbe(torch.cat(ids), flat_offsets)
        assert pooled.shape == (bags, len(ids) * dim)
        pooled.backward(torch.ones_like(pooled))

    return step


KERNELS = {"dct": dct_kernel, "torch-sparse": torch_sparse_kernel, "fbgemm-fused": fbgemm_kernel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=13)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--zipf", type=float, default=0.0, help="id skew; 0: uniform ids")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per kernel per round")
    args = parser.parse_args()
    torch.set_num_threads(1)

    kernels = {}
    for name, build in KERNELS.items():
        try:
            kernels[name] = build(args.tables, args.rows, args.dim)
        except ImportError:
            print(f"{name}: not importable here, skipped")
    law, rng = ZipfLaw(args.rows, args.zipf), torch.Generator().manual_seed(0)
    batches = [
        [
            torch.from_numpy(law.ranks(torch.rand(args.samples, generator=rng).double().numpy()))
            for _ in range(args.tables)
        ]
        for _ in range(8)
    ]
    offsets = torch.arange(args.samples + 1)
    times: dict[str, list[float]] = {name: [] for name in kernels}
    for step in kernels.values():  # warm-up
        step(batches[0], offsets)
    for _ in range(args.rounds):
        for name, step in kernels.items():
            for i in range(args.steps):
                started = time.perf_counter()
                step(batches[i % len(batches)], offsets)
                times[name].append(time.perf_counter() - started)

    reference = statistics.median(times["dct"])
    print(
        f"{args.tables} tables x {args.rows:,} rows x dim {args.dim}, {args.samples} samples, "
        f"zipf {args.zipf}, {args.rounds} alternating rounds of {args.steps} steps"
    )
    print("| kernel | median ms per step | time / dct |\n|---|---:|---:|")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"| {name} | {1e3 * median:.1f} | {median / reference:.2f} |")


if __name__ == "__main__":
    main()
