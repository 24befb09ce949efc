"""What the training loop, evaluation, checkpoints and reports ask of a model wrapped for a grid:
``HybridModel`` (embedding mode) and ``PipelineModel`` (pipeline mode) both answer it, and
nothing outside ``dct.parallel`` needs to know which it holds, but where a part exists in one
mode only (embedding mode's sharding plan and de-duplication counter).
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol

from torch import Tensor, nn

from dct.comm.codec import CodecPair
from dct.comm.dct_dp import DCTDPState
from dct.data.rank_batches import RankBatch
from dct.embedding.fused import FusedTables
from dct.embedding.rows import RowGradient
from dct.embedding.table import SparseTable
from dct.parallel.sharding import Shard
from dct.parallel.topology import Topology


class ParallelModel(Protocol):
    """This rank's part of a model trained on a DP x MP grid.

    ``dp_states``: the DCT-DP states by hook name, for checkpoints and reports;
    ``owned_features``: the features whose ids this rank's tables pool, in the order they pool
    them (what ``RankReader`` reads for its MP group); ``codecs``: the model-parallel
    transfers' codec pair.
    """

    topology: Topology
    codecs: CodecPair
    dp_states: dict[str, DCTDPState]
    owned_features: list[int]
    training: bool

    @property
    def fused(self) -> FusedTables | None:
        """FBGEMM's kernel holding this rank's tables, if it does (no row gradients then)."""

    @property
    def tables(self) -> list[SparseTable]:
        """This rank's tables whose row gradients the table optimizer applies."""

    def train_step(self, batch: RankBatch) -> Tensor:
        """Forward and backward of this rank's samples; their summed loss, detached."""

    def predict(self, batch: RankBatch) -> Tensor | None:
        """Click probabilities of this rank's samples (``None`` on a stage that has none)."""

    def dense_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """What the dense optimizer steps, under their names in the single-process model."""

    def table_blocks(self) -> list[tuple[Shard, Tensor]]:
        """This rank's table rows and their weights."""

    def take_table_gradients(self) -> list[RowGradient]:
        """Each table's row gradient since the last call, averaged over its replicas."""

    def state_dict(self) -> dict[str, Any]:
        """Every parameter under its single-process name, tables as row blocks."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take ``state`` in place."""

    def parameters(self) -> Iterator[nn.Parameter]: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...
