"""Click samples from preprocessed Criteo files (``dct.data.criteo_format``), memory-mapped.

Train and eval splits are row ranges of one directory (the last ``eval_fraction`` of the rows
are the eval split: Kaggle's "six days train, one day test" is 1/7) or two directories, the
eval one preprocessed with the same options. A split is read in order and wraps around at its
end (epochs). A request touches only the rows it asks for, so a rank reads its MP group's slice
of each global batch and nothing else.

The ids of every batch read are checked against the manifest's table sizes (a min and a max
per table over the batch: O(batch), whatever the size of the tables or of the files), so that a
hand-edited manifest or a corrupt ``sparse.i32`` is a ``DataError`` naming the file, the
feature, the id and the table size, not an index error deep inside an embedding lookup.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dct.data.batch import Batch, SparseFeatures
from dct.data.criteo_format import (
    DENSE_FILE,
    LABELS_FILE,
    MANIFEST,
    SPARSE_FILE,
    DataError,
    Manifest,
    open_arrays,
    read_manifest,
)


class _Rows:
    """One split: ``count`` rows of ``directory``'s arrays from ``first``."""

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        arrays: dict[str, np.memmap],
        first: int,
        count: int,
    ) -> None:
        self.directory, self.arrays, self.first, self.count = directory, arrays, first, count
        self.table_sizes = np.asarray(manifest.table_sizes, dtype=np.int64)

    def batch(self, start: int, count: int) -> Batch:
        rows = self.first + np.arange(start, start + count) % self.count
        ids = self.arrays[SPARSE_FILE][rows]
        self._check_ids(ids, rows)
        sparse = torch.from_numpy(ids.astype(np.int64))
        offsets = torch.arange(count + 1)
        return Batch(
            dense=torch.from_numpy(np.array(self.arrays[DENSE_FILE][rows])),
            sparse=SparseFeatures(
                tuple(sparse[:, t].contiguous() for t in range(sparse.shape[1])),
                tuple(offsets for _ in range(sparse.shape[1])),
            ),
            labels=torch.from_numpy(self.arrays[LABELS_FILE][rows].astype(np.float32)),
        )

    def _check_ids(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Raises ``DataError`` for the first table (by index) with an id outside it."""
        if not len(ids):
            return
        low, high = ids.min(axis=0), ids.max(axis=0)
        outside = np.flatnonzero((low < 0) | (high >= self.table_sizes))
        if not len(outside):
            return
        table = int(outside[0])
        size = int(self.table_sizes[table])
        bad = int(low[table]) if low[table] < 0 else int(high[table])
        row = int(rows[np.flatnonzero(ids[:, table] == bad)[0]])
        raise DataError(
            f"{self.directory / SPARSE_FILE}, row {row}: feature C{table + 1} (table {table}) "
            f"has id {bad}, outside its table of {size} rows (ids must be in [0, {size}), as "
            f"{self.directory / MANIFEST} says); the files do not belong together: delete "
            f"{self.directory} and run dct-preprocess-criteo again"
        )


class CriteoClicks:
    """Samples of preprocessed Criteo data, split into ``train`` and ``eval``.

    Example::

        source = CriteoClicks(Path("data/kaggle"), eval_fraction=1 / 7)
        batch = source.samples("train", start=0, count=1024)
    """

    def __init__(
        self, path: Path, eval_path: Path | None = None, eval_fraction: float = 1 / 7
    ) -> None:
        self.manifest = read_manifest(path)
        arrays = open_arrays(path, self.manifest)
        if eval_path is None:
            eval_rows = int(self.manifest.rows * eval_fraction)
            train_rows = self.manifest.rows - eval_rows
            if eval_rows < 1 or train_rows < 1:
                raise DataError(
                    f"{path}: {self.manifest.rows} rows cannot be split with "
                    f"data.eval_fraction={eval_fraction}; both splits need at least one row"
                )
            self.splits = {
                "train": _Rows(path, self.manifest, arrays, 0, train_rows),
                "eval": _Rows(path, self.manifest, arrays, train_rows, eval_rows),
            }
        else:
            eval_manifest = read_manifest(eval_path)
            _check_compatible(path, self.manifest, eval_path, eval_manifest)
            eval_arrays = open_arrays(eval_path, eval_manifest)
            self.splits = {
                "train": _Rows(path, self.manifest, arrays, 0, self.manifest.rows),
                "eval": _Rows(eval_path, eval_manifest, eval_arrays, 0, eval_manifest.rows),
            }

    @property
    def table_sizes(self) -> list[int]:
        return list(self.manifest.table_sizes)

    def split_rows(self, split: str) -> int:
        return self.splits[split].count

    def samples(self, split: str, start: int, count: int) -> Batch:
        return self.splits[split].batch(start, count)


def _check_compatible(path: Path, train: Manifest, eval_path: Path, evaluation: Manifest) -> None:
    """Separate directories share ids only if hashed the same way: a vocabulary is numbered
    from the files it was built on."""
    if train.options.get("mode") != "hash" or train.options != evaluation.options:
        raise DataError(
            f"{eval_path} and {path} must both be preprocessed in hash mode with the same "
            "options to be used as eval and train data; otherwise preprocess all files into one "
            "directory and split it with data.eval_fraction"
        )
