"""The preprocessed form of a team's own data (``dct-preprocess``): flat arrays per split.

A directory ``OUT`` holds::

    manifest.json                  written last, atomically; without it the directory is unfinished
    train/  eval/                  one directory per split, the same files in each:
      labels.u8                    uint8 [rows]: 0 or 1
      dense.f32                    float32 [rows, dense features], transformed, missing filled
      sparse_K.i32                 int32: feature K's table rows, every value of every row in order
      sparse_K.offsets.i64         int64 [rows + 1], multi-valued features only: row i's values
                                   are sparse_K.i32[offsets[i]:offsets[i + 1]]; a single-valued
                                   feature has exactly one value a row and no offsets file
      group.i64                    int64 [rows], with a schema ``group``: each row's group (the
                                   first 8 bytes of the BLAKE2b digest of its value as text)
    vocab/sparse_K.parquet         vocabulary features: column ``value``; entry i is table row 2 + i

Table rows: 0 the missing value, 1 out of vocabulary (vocabularies), ``1 .. N - 1`` hashed values.
Arrays are little-endian. The manifest records the schema (and its fingerprint), every split's
row and value counts, each dense feature's statistics, each table's size, and every source file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dct.data.criteo_format import DataError, SourceFile, manifest_text
from models.feature_tables import FeatureTables

FORMAT = "dct-tabular"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "eval")
LABELS, DENSE, GROUPS = "labels.u8", "dense.f32", "group.i64"
LABEL_DTYPE, DENSE_DTYPE = np.dtype("u1"), np.dtype("<f4")
VALUES_DTYPE, OFFSETS_DTYPE, GROUP_DTYPE = np.dtype("<i4"), np.dtype("<i8"), np.dtype("<i8")
MISSING_ROW, UNSEEN_ROW = 0, 1


def values_file(k: int) -> str:
    return f"sparse_{k}.i32"


def offsets_file(k: int) -> str:
    return f"sparse_{k}.offsets.i64"


def vocabulary_file(k: int) -> str:
    return f"vocab/sparse_{k}.parquet"


@dataclass(frozen=True)
class DenseStats:
    """A dense column's transform and, for ``standardize``, the training rows' statistics."""

    column: str
    transform: str
    fill: float
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True)
class TableInfo:
    """A sparse feature's table: its size, whether rows hold several values, the table it
    shares (``None``: its own) and how its bag is pooled."""

    column: str
    table_rows: int
    multi_valued: bool
    vocabulary: str | None = None
    table: str | None = None
    pooling: str = "sum"

    @property
    def table_name(self) -> str:
        return self.column if self.table is None else self.table


@dataclass(frozen=True)
class SplitInfo:
    rows: int
    values: list[int]
    """Per sparse feature, the values stored (the rows, for a single-valued one)."""


@dataclass(frozen=True)
class TabularManifest:
    schema: dict
    schema_fingerprint: str
    splits: dict[str, SplitInfo]
    dense: list[DenseStats]
    tables: list[TableInfo]
    sources: dict[str, list[SourceFile]]
    unseen_eval_values: dict[str, int] = field(default_factory=dict)
    group_column: str | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def table_sizes(self) -> list[int]:
        """Each sparse feature's table's rows (features sharing a table repeat it)."""
        return [t.table_rows for t in self.tables]

    @property
    def features(self) -> FeatureTables:
        """The model's tables (shared ones once, by first appearance) and which one each
        feature looks up, and how it pools."""
        names = [t.table_name for t in self.tables]
        order = list(dict.fromkeys(names))
        sizes = [self.tables[names.index(n)].table_rows for n in order]
        return FeatureTables.build(
            sizes, [order.index(n) for n in names], [t.pooling for t in self.tables]
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> TabularManifest:
        raw = json.loads(text)
        raw["splits"] = {k: SplitInfo(**v) for k, v in raw["splits"].items()}
        raw["dense"] = [DenseStats(**d) for d in raw["dense"]]
        raw["tables"] = [TableInfo(**t) for t in raw["tables"]]
        raw["sources"] = {k: [SourceFile(**s) for s in v] for k, v in raw["sources"].items()}
        return TabularManifest(**raw)


def write_manifest(directory: Path, manifest: TabularManifest) -> None:
    """The manifest, atomically: a reader sees none or all of it."""
    path = Path(directory) / MANIFEST
    partial = path.with_suffix(".partial")
    partial.write_text(manifest.to_json())
    os.replace(partial, path)


def read_manifest(directory: Path) -> TabularManifest:
    """A finished directory's manifest, checked against the arrays beside it.

    Raises ``DataError`` (one line naming the file and what to do) for a missing or unfinished
    directory, another format, or arrays whose sizes disagree with the manifest.
    """
    directory = Path(directory)
    path, text = manifest_text(directory, MANIFEST, "dct-preprocess", "dct-preprocess")
    try:
        manifest = TabularManifest.from_json(text)
    except (ValueError, TypeError, KeyError) as error:
        raise DataError(
            f"{path} is not a dct-preprocess manifest ({error}); preprocess again"
        ) from None
    if manifest.format != FORMAT or manifest.format_version != FORMAT_VERSION:
        raise DataError(
            f"{path} is {manifest.format} version {manifest.format_version}; this dct reads "
            f"{FORMAT} version {FORMAT_VERSION}: preprocess again"
        )
    for split, info in manifest.splits.items():
        for name, size in _expected_sizes(manifest, info).items():
            array = directory / split / name
            actual = array.stat().st_size if array.is_file() else None
            if actual != size:
                found = "missing" if actual is None else f"{actual} bytes"
                raise DataError(
                    f"{array} is {found}, but {path} says {size} bytes; the files do not "
                    "belong together: preprocess again"
                )
    return manifest


def _expected_sizes(manifest: TabularManifest, info: SplitInfo) -> dict[str, int]:
    sizes = {
        LABELS: info.rows * LABEL_DTYPE.itemsize,
        DENSE: info.rows * len(manifest.dense) * DENSE_DTYPE.itemsize,
    }
    if manifest.group_column is not None:
        sizes[GROUPS] = info.rows * GROUP_DTYPE.itemsize
    for k, (table, count) in enumerate(zip(manifest.tables, info.values)):
        sizes[values_file(k)] = count * VALUES_DTYPE.itemsize
        if table.multi_valued:
            sizes[offsets_file(k)] = (info.rows + 1) * OFFSETS_DTYPE.itemsize
    return sizes


@dataclass(frozen=True)
class SplitArrays:
    """One split's arrays, memory-mapped read-only; ``offsets[k]`` is ``None`` for a
    single-valued feature, ``groups`` without a schema ``group``."""

    labels: np.ndarray
    dense: np.ndarray
    values: list[np.ndarray]
    offsets: list[np.ndarray | None]
    groups: np.ndarray | None = None


def open_split(directory: Path, manifest: TabularManifest, split: str) -> SplitArrays:
    info = manifest.splits[split]
    base = Path(directory) / split

    def mapped(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        if 0 in shape:
            return np.zeros(shape, dtype=dtype)
        return np.memmap(base / name, dtype=dtype, mode="r", shape=shape)

    values, offsets = [], []
    for k, (table, count) in enumerate(zip(manifest.tables, info.values)):
        values.append(mapped(values_file(k), VALUES_DTYPE, (count,)))
        offsets.append(
            mapped(offsets_file(k), OFFSETS_DTYPE, (info.rows + 1,)) if table.multi_valued else None
        )
    return SplitArrays(
        labels=mapped(LABELS, LABEL_DTYPE, (info.rows,)),
        dense=mapped(DENSE, DENSE_DTYPE, (info.rows, len(manifest.dense))),
        values=values,
        offsets=offsets,
        groups=None if manifest.group_column is None else mapped(GROUPS, GROUP_DTYPE, (info.rows,)),
    )
