"""A rank's tables in FBGEMM's table-batched embedding, the optimizer fused into backward.

FBGEMM's kernel pools every table in one call and, in the backward pass, updates the touched
rows in place (``EXACT_SGD``, ``EXACT_ADAGRAD``, ``EXACT_ROWWISE_ADAGRAD``: the same updates as
``dct.embedding.table_optimizers``). It is about twice as fast as ``SparseTable`` plus
``TableOptimizer`` on CPU (``benchmarks/table_kernels.py``), but hands over no row gradient: it
fits tables that no replica shares and that DCT-DP does not threshold, which is where
``model.table_kernel=auto`` uses it (``dct.parallel.hybrid``). It needs ``fbgemm-gpu-cpu`` (CPU)
or ``fbgemm-gpu`` (CUDA), version 1.8.0 with torch 2.13.0: ``pip install -e '.[fbgemm]'``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from dct.data.batch import SparseFeatures


def fbgemm_available() -> bool:
    try:
        import fbgemm_gpu.split_table_batched_embeddings_ops_training  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


class FusedTables(nn.Module):
    """Tables of ``shapes`` ``(rows_i, dim)``, table ``i``'s weights filled in place by
    ``init(i, weights)``, pooled side by side ``[n, len(lookups) * dim]`` like ``TableShard``:
    lookup ``j`` pools its bags in table ``lookups[j]`` (default: one lookup per table, in
    order); ``optimizer`` is a table optimizer name.

    Example::

        tables = FusedTables([(100, 16)], fill, "sgd", lr=0.05, eps=1e-8, device=device)
        pooled = tables(sparse)          # backward updates the touched rows
    """

    def __init__(
        self,
        shapes: Sequence[tuple[int, int]],
        init: Callable[[int, Tensor], None],
        optimizer: str,
        lr: float,
        eps: float,
        device: torch.device,
        lookups: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        from fbgemm_gpu.split_embedding_configs import EmbOptimType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import (
            EmbeddingLocation,
            PoolingMode,
        )
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            ComputeDevice,
            SplitTableBatchedEmbeddingBagsCodegen,
        )

        cuda = device.type == "cuda"
        location = EmbeddingLocation.DEVICE if cuda else EmbeddingLocation.HOST
        compute = ComputeDevice.CUDA if cuda else ComputeDevice.CPU
        kinds = {
            "sgd": EmbOptimType.EXACT_SGD,
            "adagrad": EmbOptimType.EXACT_ADAGRAD,
            "rowwise_adagrad": EmbOptimType.EXACT_ROWWISE_ADAGRAD,
        }
        self.kernel = SplitTableBatchedEmbeddingBagsCodegen(
            [(rows, dim, location, compute) for rows, dim in shapes],
            feature_table_map=None if lookups is None else list(lookups),
            optimizer=kinds[optimizer],
            learning_rate=lr,
            eps=eps,
            pooling_mode=PoolingMode.SUM,
            device=device,
        )
        with torch.no_grad():
            for i, weights in enumerate(self.kernel.split_embedding_weights()):
                init(i, weights)

    def forward(self, sparse: SparseFeatures) -> Tensor:
        """Every lookup's bags in one call (``sparse`` holds one feature per lookup)."""
        return self.kernel(*sparse.concatenated())

    def weights(self) -> list[Tensor]:
        """Each table's current weights (views into the kernel's storage)."""
        return list(self.kernel.split_embedding_weights())

    def optimizer_states(self) -> list[Tensor]:
        """Each table's optimizer state (views), shaped as ``TableOptimizer.state``'s."""
        return [state for table in self.kernel.split_optimizer_states() for state in table]
