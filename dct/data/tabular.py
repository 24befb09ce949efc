"""Click samples from a ``dct-preprocess`` directory (``dct.data.tabular_format``), memory-mapped.

The directory holds its own ``train`` and ``eval`` splits; ``valid_fraction`` holds the train
split's last rows out as a ``valid`` split (the latest, for data split by time), read from the
same files. A split is read in order and wraps around at its end (epochs). A request touches
only the rows it asks for, so a rank reads its MP group's slice of each global batch and nothing
else: a multi-valued feature's bags are gathered through its offsets, at a cost proportional to
the rows and values requested, never to the file.

The ids of every batch read are checked against the manifest's table sizes (a min and a max per
feature over the batch), and a multi-valued feature's offsets against its values, so that a
hand-edited manifest or a corrupt array is a ``DataError`` naming the file, the feature's column,
the value and the bound, not an index error deep inside numpy or an embedding lookup.

Example::

    source = TabularClicks(Path("data/movies"))
    batch = source.samples("train", start=0, count=1024)
    source.table_sizes, source.num_dense, source.split_rows("eval")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dct.data.batch import Batch, SparseFeatures
from dct.data.criteo_format import DataError
from dct.data.tabular_format import (
    MANIFEST,
    SPLITS,
    SplitArrays,
    TabularManifest,
    offsets_file,
    open_split,
    read_manifest,
    values_file,
)
from models.feature_tables import FeatureTables


class TabularClicks:
    """Samples of a ``dct-preprocess`` output directory, split into ``train`` and ``eval``.

    Example::

        source = TabularClicks(Path("data/movies"))
        batch = source.samples("eval", start=source.split_rows("eval") - 10, count=20)  # wraps
    """

    def __init__(self, path: Path, valid_fraction: float = 0.0) -> None:
        self.path = Path(path)
        self.manifest: TabularManifest = read_manifest(self.path)
        for split in SPLITS:
            info = self.manifest.splits.get(split)
            if info is None or info.rows < 1:
                raise DataError(
                    f"{self.path / MANIFEST}: the {split} split has no rows; both splits need "
                    "at least one: run dct-preprocess again with more rows or another eval split"
                )
        self.arrays = {split: open_split(self.path, self.manifest, split) for split in SPLITS}
        self._table_sizes = np.asarray(self.manifest.table_sizes, dtype=np.int64)
        stored = self.manifest.splits["train"].rows
        valid = int(stored * valid_fraction)
        if valid and stored - valid < 1:
            raise DataError(
                f"data.valid_fraction={valid_fraction} leaves none of the {stored} train rows "
                "to train on: use a smaller fraction"
            )
        # Each split as (stored split, first row, rows).
        self._views = {
            "train": ("train", 0, stored - valid),
            "valid": ("train", stored - valid, valid),
            "eval": ("eval", 0, self.manifest.splits["eval"].rows),
        }

    @property
    def table_sizes(self) -> list[int]:
        """The model's tables' rows (a shared table once)."""
        return list(self.features.table_sizes)

    @property
    def features(self) -> FeatureTables:
        """Which table each feature looks up, and how it pools (``models.feature_tables``)."""
        return self.manifest.features

    @property
    def num_dense(self) -> int:
        return len(self.manifest.dense)

    def split_rows(self, split: str) -> int:
        """Rows of ``train``, ``valid`` (0 without a validation fraction) or ``eval``."""
        return self._views[split][2]

    def samples(self, split: str, start: int, count: int) -> Batch:
        """Rows ``start .. start + count`` of ``split``, wrapping around at its end.

        Raises ``DataError`` for an id outside its table or offsets outside their values.
        """
        stored, first, size = self._views[split]
        arrays = self.arrays[stored]
        rows = first + np.arange(start, start + count, dtype=np.int64) % size
        values, offsets = [], []
        for k in range(len(arrays.values)):
            ids, bags = self._feature(stored, arrays, k, rows)
            values.append(torch.from_numpy(ids))
            offsets.append(torch.from_numpy(bags))
        return Batch(
            dense=torch.from_numpy(np.array(arrays.dense[rows])),
            sparse=SparseFeatures(tuple(values), tuple(offsets)),
            labels=torch.from_numpy(arrays.labels[rows].astype(np.float32)),
            groups=None
            if arrays.groups is None
            else torch.from_numpy(np.array(arrays.groups[rows])),
        )

    def _feature(
        self, split: str, arrays: SplitArrays, k: int, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Feature ``k``'s ids (int64) of ``rows`` and their offsets (``len(rows) + 1``, from 0)."""
        stored, stored_offsets = arrays.values[k], arrays.offsets[k]
        if stored_offsets is None:
            ids, bags = stored[rows].astype(np.int64), np.arange(len(rows) + 1, dtype=np.int64)
            self._check_ids(split, k, ids, rows, bags)
            return ids, bags
        begin, end = stored_offsets[rows], stored_offsets[rows + 1]
        self._check_offsets(split, k, begin, end, rows, len(stored))
        lengths = end - begin
        bags = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=bags[1:])
        # Value j of the batch is stored at begin[i] + (j - bags[i]) for the row i holding it.
        positions = np.repeat(begin - bags[:-1], lengths) + np.arange(bags[-1], dtype=np.int64)
        ids = stored[positions].astype(np.int64)
        self._check_ids(split, k, ids, rows, bags)
        return ids, bags

    def _check_offsets(
        self,
        split: str,
        k: int,
        begin: np.ndarray,
        end: np.ndarray,
        rows: np.ndarray,
        stored: int,
    ) -> None:
        """Every bag lies within the values stored: a corrupt offsets file would otherwise read
        another row's values, or fail inside numpy."""
        bad = np.flatnonzero((begin < 0) | (end < begin) | (end > stored))
        if not len(bad):
            return
        i = int(bad[0])
        path = self.path / split / offsets_file(k)
        raise DataError(
            f"{path}, row {int(rows[i])}: feature {self._column(k)!r} has the bag "
            f"[{int(begin[i])}, {int(end[i])}), outside its {stored} values; the files do not "
            f"belong together: delete {self.path} and run dct-preprocess again"
        )

    def _check_ids(
        self, split: str, k: int, ids: np.ndarray, rows: np.ndarray, bags: np.ndarray
    ) -> None:
        """Two reductions over the batch's ids of feature ``k``; the first one outside its table
        is named with the row that holds it."""
        if not len(ids):
            return
        size = int(self._table_sizes[k])
        low, high = int(ids.min()), int(ids.max())
        if low >= 0 and high < size:
            return
        bad = low if low < 0 else high
        row = int(rows[np.searchsorted(bags, np.flatnonzero(ids == bad)[0], side="right") - 1])
        path = self.path / split / values_file(k)
        raise DataError(
            f"{path}, row {row}: feature {self._column(k)!r} (table {k}) has id {bad}, outside "
            f"its table of {size} rows (ids must be in [0, {size}), as {self.path / MANIFEST} "
            f"says); the files do not belong together: delete {self.path} and run dct-preprocess "
            "again"
        )

    def _column(self, k: int) -> str:
        return self.manifest.tables[k].column
