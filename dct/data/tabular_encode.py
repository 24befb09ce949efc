"""From a batch of raw columns to the arrays a model reads: labels, transformed dense features,
table rows of categorical values; and the training rows' statistics that define them.

``Statistics`` counts each vocabulary feature's values and each standardized feature's moments
over the training rows (memory: one entry per distinct value, never per row). ``Encoder`` then
maps any batch, of either split: a value's table row is its vocabulary place (from row 2, by
descending count, ties by value; row 1 for values seen fewer than ``min_count`` times or never,
row 0 for a missing one) or ``1 + h % (N - 1)`` for ``hash_buckets: N``, ``h`` the first 8 bytes
of the value's BLAKE2b digest (little-endian), stable across machines and runs. Every
categorical value is compared as text (``3`` in a CSV file and the integer 3 in a Parquet file
are the same value).

Example::

    stats = Statistics(schema)
    for batch in batches: stats.observe(batch, "train.parquet")
    encoder = Encoder(schema, stats.vocabularies(), stats.dense_stats())
    rows = encoder.encode(batch, "eval.parquet", first_row=0)
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dct.data.criteo_format import DataError
from dct.data.feature_schema import FeatureSchema, SparseFeature
from dct.data.tabular_format import MISSING_ROW, UNSEEN_ROW, DenseStats

FIRST_VOCABULARY_ROW = 2


@dataclass(frozen=True)
class EncodedRows:
    """A batch's arrays: ``values[k]`` every table row of feature ``k`` in order, ``lengths[k]``
    its values per row (``None`` for a single-valued feature: one each)."""

    labels: np.ndarray
    dense: np.ndarray
    values: list[np.ndarray]
    lengths: list[np.ndarray | None]
    groups: np.ndarray | None = None

    def rows(self, keep: np.ndarray) -> EncodedRows:
        """Only the rows where the boolean ``keep`` is true."""
        values, lengths = [], []
        for flat, counts in zip(self.values, self.lengths):
            if counts is None:
                values.append(flat[keep])
                lengths.append(None)
            else:
                values.append(flat[np.repeat(keep, counts)])
                lengths.append(counts[keep])
        groups = None if self.groups is None else self.groups[keep]
        return EncodedRows(self.labels[keep], self.dense[keep], values, lengths, groups)


class Statistics:
    """What the training rows say: vocabularies' counts and standardized features' moments."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        # Features sharing a table share one counter: its vocabulary counts all their values.
        shared: dict[str, collections.Counter] = {}
        self._counts: list[collections.Counter | None] = [
            None if f.hashed else shared.setdefault(f.table_name, collections.Counter())
            for f in schema.sparse
        ]
        # Sums around the first batch's mean: squares stay small whatever the values' offset.
        self._moments: list[list[float] | None] = [
            [0.0, 0.0, 0.0, np.nan] if f.transform == "standardize" else None for f in schema.dense
        ]

    def observe(self, batch: pa.RecordBatch, where: str) -> None:
        for feature, counts in zip(self.schema.sparse, self._counts):
            if counts is None:
                continue
            flat, _ = categorical(batch.column(feature.column), feature, where)
            tally = pc.value_counts(flat.drop_null())
            counts.update(dict(zip(tally.field(0).to_pylist(), tally.field(1).to_pylist())))
        for feature, moments in zip(self.schema.dense, self._moments):
            if moments is None:
                continue
            x = numeric(batch.column(feature.column), where, feature.column)
            x = x[~np.isnan(x)]
            if not x.size:
                continue
            if np.isnan(moments[3]):
                moments[3] = float(x.mean())
            centred = x - moments[3]
            moments[0] += x.size
            moments[1] += float(centred.sum())
            moments[2] += float((centred * centred).sum())

    def vocabularies(self) -> list[list[str] | None]:
        """Per sparse feature, its table's vocabulary in row order (from row 2), ``None`` if
        hashed (features sharing a table get equal lists)."""
        out: list[list[str] | None] = []
        for feature, counts in zip(self.schema.sparse, self._counts):
            if counts is None:
                out.append(None)
                continue
            kept = [(-c, v) for v, c in counts.items() if c >= feature.min_count]
            out.append([v for _, v in sorted(kept)])
        return out

    def dense_stats(self) -> list[DenseStats]:
        stats = []
        for feature, moments in zip(self.schema.dense, self._moments):
            mean, std = 0.0, 1.0
            if moments is not None and moments[0] > 0:
                n, s, ss, shift = moments
                mean = shift + s / n
                variance = max(ss / n - (s / n) ** 2, 0.0)
                std = float(np.sqrt(variance)) if variance > 0 else 1.0
            stats.append(DenseStats(feature.column, feature.transform, feature.fill, mean, std))
        return stats


class Encoder:
    """Maps batches of raw columns to ``EncodedRows`` with fixed vocabularies and statistics."""

    def __init__(
        self,
        schema: FeatureSchema,
        vocabularies: list[list[str] | None],
        dense: list[DenseStats],
    ) -> None:
        self.schema, self.dense = schema, dense
        self._vocabularies = [None if v is None else pa.array(v, pa.string()) for v in vocabularies]
        self.table_rows = [
            f.hash_buckets if v is None else FIRST_VOCABULARY_ROW + len(v)
            for f, v in zip(schema.sparse, vocabularies)
        ]

    def encode(self, batch: pa.RecordBatch, where: str, first_row: int) -> EncodedRows:
        """``batch``'s arrays; ``where`` and ``first_row`` (its first row's number in the file)
        name a bad value in a ``DataError``."""
        labels = label_values(batch.column(self.schema.label.column), self.schema, where, first_row)
        columns = []
        for stats in self.dense:
            x = numeric(batch.column(stats.column), where, stats.column)
            if stats.transform == "log1p":
                x = np.log1p(np.maximum(x, 0.0))
            elif stats.transform == "standardize":
                x = (x - stats.mean) / stats.std
            columns.append(np.where(np.isnan(x), stats.fill, x))
        dense = np.stack(columns, axis=1) if columns else np.zeros((batch.num_rows, 0))
        values, lengths = [], []
        for feature, vocabulary in zip(self.schema.sparse, self._vocabularies):
            flat, counts = categorical(batch.column(feature.column), feature, where)
            if vocabulary is None:
                rows = _hashed(flat, feature.hash_buckets)
            else:
                place = pc.index_in(flat, value_set=vocabulary)
                missing = pc.is_null(flat).to_numpy(zero_copy_only=False)
                found = place.fill_null(-1).to_numpy(zero_copy_only=False)
                rows = np.where(found >= 0, found + FIRST_VOCABULARY_ROW, UNSEEN_ROW)
                rows = np.where(missing, MISSING_ROW, rows)
            values.append(rows.astype(np.int32))
            lengths.append(counts)
        group = self.schema.group
        groups = None if group is None else group_ids(batch.column(group), where, group)
        return EncodedRows(labels, dense.astype(np.float32), values, lengths, groups)


def categorical(
    column: pa.Array, feature: SparseFeature, where: str
) -> tuple[pa.Array, np.ndarray | None]:
    """A categorical column's values as text, nulls for missing ones, and for a multi-valued
    feature each row's count (a missing or empty list: one missing value)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    is_list = pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
    if not feature.multi_valued:
        if is_list:
            raise DataError(
                f"{where}: column {feature.column!r} holds lists; declare it multi_valued: true"
            )
        return _as_text(column, where, feature.column), None
    if not is_list:
        if feature.separator is None or not pa.types.is_string(column.type):
            raise DataError(
                f"{where}: column {feature.column!r} is declared multi_valued but holds "
                f"{column.type}, not lists; give a separator to split text on"
            )
        column = pc.split_pattern(column, feature.separator)
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    flat = _as_text(pc.list_flatten(column), where, feature.column)
    empty = lengths == 0
    if not empty.any():
        return flat, lengths.astype(np.int64)
    # Each empty row gets one missing value: the null appended after the flat values.
    counts = np.where(empty, 1, lengths).astype(np.int64)
    row = np.repeat(np.arange(lengths.size), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    source = (np.cumsum(lengths) - lengths)[row] + within
    source = np.where(empty[row], len(flat), source)
    padded = pa.concat_arrays([flat, pa.nulls(1, pa.string())])
    return padded.take(pa.array(source)), counts


def numeric(column: pa.Array, where: str, name: str) -> np.ndarray:
    """A numeric column as float64, NaN where missing."""
    try:
        values = pc.cast(column, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(
            f"{where}: column {name!r} holds {column.type}, not numbers; declare it sparse or "
            "fix the file"
        ) from None
    return values.to_numpy(zero_copy_only=False).astype(np.float64)


def label_values(column: pa.Array, schema: FeatureSchema, where: str, first_row: int) -> np.ndarray:
    """The 0/1 labels of a batch by the schema's rule; ``DataError`` for a missing label, or
    for a plain label column holding anything but 0 and 1."""
    rule = schema.label
    nulls = pc.is_null(column).to_numpy(zero_copy_only=False)
    if nulls.any():
        row = first_row + int(np.flatnonzero(nulls)[0])
        raise DataError(
            f"{where}, row {row}: the label column {rule.column!r} is empty; every row needs a "
            "label"
        )
    if rule.positive is not None:
        positive = pa.array([_text(p) for p in rule.positive], pa.string())
        return (
            pc.is_in(_as_text(column, where, rule.column), value_set=positive)
            .to_numpy(zero_copy_only=False)
            .astype(np.uint8)
        )
    x = numeric(
        column if not pa.types.is_boolean(column.type) else pc.cast(column, pa.int8()),
        where,
        rule.column,
    )
    if rule.threshold is not None:
        return (x >= rule.threshold).astype(np.uint8)
    bad = (x != 0) & (x != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}, row {first_row + i}: the label column {rule.column!r} holds {x[i]:g}; "
            "a label column holds 0 or 1, else declare label positive: or threshold:"
        )
    return x.astype(np.uint8)


def _as_text(column: pa.Array, where: str, name: str) -> pa.Array:
    if pa.types.is_boolean(column.type):
        column = pc.cast(column, pa.int8())
    if pa.types.is_floating(column.type):
        # 3.0 and 3 are one value: whole floats as integers, as CSV text would spell them
        whole = pc.equal(column, pc.floor(column)).fill_null(False)
        if pc.all(whole).as_py() is not False:
            column = pc.cast(column, pa.int64())
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(
            f"{where}: column {name!r} holds {column.type}, which is not categorical"
        ) from None


def _text(value: object) -> str:
    """A YAML value as the text it is compared as."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def group_ids(column: pa.Array, where: str, name: str) -> np.ndarray:
    """Each row's group: the first 8 bytes of the BLAKE2b digest of its value as text
    (int64); the rows missing a value are one group."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(_as_text(column, where, name))
    digests = [
        int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little", signed=True)
        for v in encoded.dictionary.to_pylist()
    ]
    table = np.array(digests + [0], dtype=np.int64)
    index = encoded.indices.fill_null(len(digests)).to_numpy(zero_copy_only=False)
    return table[index]


def _hashed(flat: pa.Array, buckets: int) -> np.ndarray:
    """Rows ``1 .. buckets - 1`` by each distinct value's digest, 0 for missing values."""
    encoded = pc.dictionary_encode(flat)
    digests = [
        int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little")
        for v in encoded.dictionary.to_pylist()
    ]
    table = np.array([1 + d % (buckets - 1) for d in digests] + [MISSING_ROW], dtype=np.int64)
    index = encoded.indices.fill_null(len(digests)).to_numpy(zero_copy_only=False)
    return table[index]
