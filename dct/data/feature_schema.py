"""A team's own features, declared once in a YAML file: the label, numeric and categorical columns.

Example (``configs/schemas/adult.yaml``)::

    label: {column: income, positive: [">50K", ">50K."]}
    dense:
      - {column: age, transform: standardize}
      - {column: capital-gain, transform: log1p}
    sparse:
      - {column: workclass}                       # a vocabulary from the training rows
      - {column: genres, multi_valued: true, separator: "|"}
      - {column: user_id, hash_buckets: 100000}
      - {column: friend_id, table: user_id}       # looks up user_id's table
      - {column: tags, multi_valued: true, pooling: mean}
    eval: {fraction: 0.2}                         # or eval files given to dct-preprocess

- ``label``: ``column`` holding 0/1 (integers or booleans); or ``positive`` (the values that
  count as 1, every other value 0); or ``threshold`` (1 where the number is ``>=`` it).
- ``dense``: numeric columns. ``transform``: ``none``, ``log1p`` (of ``max(x, 0)``) or
  ``standardize`` (mean and standard deviation of the training rows); ``fill``: the feature's
  value, after the transform, where the entry is missing (default 0: for ``standardize``, the
  mean). No dense column at all is allowed.
- ``sparse``: categorical columns (strings or integers), one embedding table each. A
  vocabulary from the training rows (``min_count``, default 1: values seen fewer times share
  the out-of-vocabulary row) or ``hash_buckets: N``. Row 0 is the missing value, row 1 the
  out-of-vocabulary one (vocabulary mode); a hashed value lands in ``1 .. N - 1``.
  ``multi_valued: true``: a Parquet list column, or a CSV field split on ``separator``; a missing
  or empty list is one missing value. ``pooling``: ``sum`` (default) or ``mean`` of the bag's
  vectors. ``table: NAME``: share one table with every feature naming the same ``NAME`` (or
  the feature whose column is ``NAME``); they must agree on ``min_count`` or ``hash_buckets``,
  and the vocabulary counts the values of all of them.
- ``eval``: ``fraction`` of the rows, the last in file order (or, with ``time_column``, those
  latest in time) held out; ignored when eval files are given.
- ``columns``: for CSV/TSV files without a header row, their columns' names in order (Criteo's
  logs, ``configs/schemas/criteo.yaml``); without it the first row names them.
- ``group``: a column (a user or session id, any type) whose value groups rows: evaluation then
  reports grouped AUC (``gauc``). It may also be a feature's column.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dct.data.criteo_format import DataError
from models.feature_tables import POOLINGS

TRANSFORMS = ("none", "log1p", "standardize")


class SchemaError(DataError):
    """A schema file the user must fix; the message names the file and the entry."""


@dataclass(frozen=True)
class LabelRule:
    column: str
    positive: tuple[Any, ...] | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class DenseFeature:
    column: str
    transform: str = "none"
    fill: float = 0.0


@dataclass(frozen=True)
class SparseFeature:
    column: str
    multi_valued: bool = False
    separator: str | None = None
    min_count: int = 1
    hash_buckets: int | None = None
    table: str | None = None
    pooling: str = "sum"

    @property
    def hashed(self) -> bool:
        return self.hash_buckets is not None

    @property
    def table_name(self) -> str:
        """The table it looks up: its ``table``, else its own, named by its column."""
        return self.column if self.table is None else self.table


@dataclass(frozen=True)
class EvalSplit:
    fraction: float = 0.1
    time_column: str | None = None


@dataclass(frozen=True)
class FeatureSchema:
    label: LabelRule
    dense: tuple[DenseFeature, ...] = ()
    sparse: tuple[SparseFeature, ...] = ()
    eval: EvalSplit = field(default_factory=EvalSplit)
    header: tuple[str, ...] | None = None
    """The names of a headerless CSV/TSV file's columns (the schema's ``columns``)."""
    group: str | None = None
    """The column whose value groups rows for grouped AUC (the schema's ``group``)."""

    def columns(self) -> list[str]:
        """Every column the schema reads, each once, in declaration order."""
        names = [self.label.column, *(f.column for f in self.dense)]
        names += [f.column for f in self.sparse]
        for extra in (self.eval.time_column, self.group):
            if extra is not None:
                names.append(extra)
        return list(dict.fromkeys(names))

    def to_dict(self) -> dict:
        """The schema as JSON types; a sparse feature's ``table`` and ``pooling`` and the
        ``group`` only where set, so a schema that uses none keeps the fingerprint it had before
        they existed."""
        raw = json.loads(json.dumps(asdict(self)))
        if raw["group"] is None:
            del raw["group"]
        for feature in raw["sparse"]:
            for key, default in _OPTIONAL_SPARSE.items():
                if feature[key] == default:
                    del feature[key]
        return raw

    @staticmethod
    def from_dict(raw: dict) -> FeatureSchema:
        """The schema ``to_dict`` gave (as a manifest records it); ``KeyError`` or
        ``TypeError`` for another form."""
        raw = dict(raw)
        label = dict(raw.pop("label"))
        if label.get("positive") is not None:
            label["positive"] = tuple(label["positive"])
        header = raw.pop("header", None)
        return FeatureSchema(
            label=LabelRule(**label),
            dense=tuple(DenseFeature(**d) for d in raw.pop("dense", [])),
            sparse=tuple(SparseFeature(**f) for f in raw.pop("sparse", [])),
            eval=EvalSplit(**raw.pop("eval", {})),
            header=None if header is None else tuple(header),
            **raw,
        )

    def fingerprint(self) -> str:
        """SHA-256 of the schema's canonical JSON: what the preprocessed files were made with."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def load_schema(path: Path) -> FeatureSchema:
    """The schema in the YAML file ``path``; ``SchemaError`` (one line) for anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: no such schema file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        first = str(error).splitlines()[0]
        raise SchemaError(f"{path} is not valid YAML ({first})") from None
    return parse_schema(raw, str(path))


def parse_schema(raw: Any, where: str) -> FeatureSchema:
    """The schema a YAML document ``raw`` declares; ``where`` names it in errors."""
    entry = _Entry(
        raw, where, "the schema", {"label", "dense", "sparse", "eval", "columns", "group"}
    )
    label = _label(entry.child("label", {"column", "positive", "threshold"}, required=True))
    dense = tuple(_dense(e) for e in entry.children("dense"))
    sparse = tuple(_sparse(e) for e in entry.children("sparse"))
    split = entry.child("eval", {"fraction", "time_column"})
    header = entry.raw.get("columns")
    if header is not None and (
        not isinstance(header, list) or not all(isinstance(c, (str, int)) for c in header)
    ):
        raise SchemaError(f"{where}: columns must be a list of column names, got {header!r}")
    schema = FeatureSchema(
        label,
        dense,
        sparse,
        EvalSplit() if split is None else _eval(split),
        None if header is None else tuple(str(c) for c in header),
        _group(entry),
    )
    if not sparse:
        raise SchemaError(f"{where}: declare at least one sparse (categorical) column")
    _check_shared_tables(sparse, where)
    names = [label.column, *(f.column for f in dense), *(f.column for f in sparse)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SchemaError(
            f"{where}: column {repeated[0]!r} is declared twice (label, dense and sparse "
            "columns must differ)"
        )
    return schema


class _Entry:
    """One mapping of the YAML, with the words to name it in an error."""

    def __init__(self, raw: Any, where: str, what: str, keys: set[str]) -> None:
        if not isinstance(raw, dict):
            raise SchemaError(f"{where}: {what} must be a mapping of keys, got {raw!r}")
        unknown = sorted(set(raw) - keys)
        if unknown:
            raise SchemaError(
                f"{where}: {what} has unknown key {unknown[0]!r}; known: {', '.join(sorted(keys))}"
            )
        self.raw, self.where, self.what = raw, where, what

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = self.raw.get(key, default)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # YAML's true is an int to Python: refuse it where a number is asked for
        wrong = not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        if value is not None and wrong:
            names = " or ".join(k.__name__ for k in kinds)
            raise SchemaError(f"{self.where}: {self.what}: {key} must be {names}, got {value!r}")
        return value

    def column(self) -> str:
        name = self.get("column", (str, int))
        if name is None:
            raise SchemaError(f"{self.where}: {self.what} needs a column")
        return str(name)

    def child(self, key: str, keys: set[str], required: bool = False) -> _Entry | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                raise SchemaError(f"{self.where}: the schema needs a {key!r} entry")
            return None
        return _Entry(value, self.where, key, keys)

    def children(self, key: str) -> list[_Entry]:
        value = self.raw.get(key) or []
        if not isinstance(value, list):
            raise SchemaError(f"{self.where}: {key} must be a list of columns, got {value!r}")
        keys = _DENSE_KEYS if key == "dense" else _SPARSE_KEYS
        return [_Entry(v, self.where, f"{key} entry {i + 1}", keys) for i, v in enumerate(value)]


_DENSE_KEYS = {"column", "transform", "fill"}
_SPARSE_KEYS = {
    "column",
    "multi_valued",
    "separator",
    "min_count",
    "hash_buckets",
    "table",
    "pooling",
}
_OPTIONAL_SPARSE = {"table": None, "pooling": "sum"}


def _label(entry: _Entry) -> LabelRule:
    column = entry.column()
    positive = entry.raw.get("positive")
    threshold = entry.get("threshold", (int, float))
    if positive is not None and threshold is not None:
        raise SchemaError(f"{entry.where}: label: give positive or threshold, not both")
    if positive is not None and not isinstance(positive, list):
        positive = [positive]
    return LabelRule(
        column,
        None if positive is None else tuple(positive),
        None if threshold is None else float(threshold),
    )


def _dense(entry: _Entry) -> DenseFeature:
    transform = entry.get("transform", str, "none")
    if transform not in TRANSFORMS:
        raise SchemaError(
            f"{entry.where}: {entry.what}: transform {transform!r} is unknown; use one of "
            f"{', '.join(TRANSFORMS)}"
        )
    fill = entry.get("fill", (int, float), 0.0)
    return DenseFeature(entry.column(), transform, float(fill))


def _sparse(entry: _Entry) -> SparseFeature:
    multi = entry.get("multi_valued", bool, False)
    separator = entry.get("separator", str)
    if separator is not None and not multi:
        raise SchemaError(
            f"{entry.where}: {entry.what}: separator is for multi_valued columns; add "
            "multi_valued: true"
        )
    if separator == "":
        raise SchemaError(f"{entry.where}: {entry.what}: separator must not be empty")
    min_count = entry.get("min_count", int, 1)
    buckets = entry.get("hash_buckets", int)
    if min_count < 1:
        raise SchemaError(f"{entry.where}: {entry.what}: min_count must be >= 1, got {min_count}")
    if buckets is not None and buckets < 2:
        raise SchemaError(
            f"{entry.where}: {entry.what}: hash_buckets must be >= 2 (row 0 is the missing "
            f"value), got {buckets}"
        )
    if buckets is not None and "min_count" in entry.raw:
        raise SchemaError(
            f"{entry.where}: {entry.what}: min_count is for vocabularies; drop it or hash_buckets"
        )
    pooling = entry.get("pooling", str, "sum")
    if pooling not in POOLINGS:
        raise SchemaError(
            f"{entry.where}: {entry.what}: pooling {pooling!r} is unknown; use one of "
            f"{', '.join(POOLINGS)}"
        )
    table = entry.get("table", (str, int))
    table = None if table is None else str(table)
    return SparseFeature(entry.column(), multi, separator, min_count, buckets, table, pooling)


def _check_shared_tables(sparse: tuple[SparseFeature, ...], where: str) -> None:
    """Features sharing a table agree on how values become its rows."""
    first: dict[str, SparseFeature] = {}
    for feature in sparse:
        other = first.setdefault(feature.table_name, feature)
        if (other.min_count, other.hash_buckets) != (feature.min_count, feature.hash_buckets):
            raise SchemaError(
                f"{where}: sparse columns {other.column!r} and {feature.column!r} share table "
                f"{feature.table_name!r} but differ in min_count or hash_buckets; give them the "
                "same"
            )


def _group(entry: _Entry) -> str | None:
    group = entry.get("group", (str, int))
    return None if group is None else str(group)


def _eval(entry: _Entry) -> EvalSplit:
    fraction = float(entry.get("fraction", (int, float), 0.1))
    if not 0 < fraction < 1:
        raise SchemaError(f"{entry.where}: eval: fraction must be between 0 and 1, got {fraction}")
    time_column = entry.get("time_column", (str, int))
    return EvalSplit(fraction, None if time_column is None else str(time_column))
