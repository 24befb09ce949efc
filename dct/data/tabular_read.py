"""Streaming the columns a schema names out of Parquet, CSV and TSV files (plain or gzip).

Files are read ``batch_rows`` rows at a time with pyarrow, only the named columns: memory holds
one batch, whatever the file's size. The format follows the name: ``.parquet``/``.pq``; ``.csv``
(comma); ``.tsv``/``.txt`` (tab); each optionally ``.gz``. CSV/TSV files need a header row;
their categorical columns are read as text and their numeric ones as numbers, so a value that
is neither a number nor empty in a numeric column is an error naming the file and the column.

Example::

    for batch in read_batches(Path("train.parquet"), schema, batch_rows=65536):
        ...   # a pyarrow.RecordBatch of schema.columns()
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from dct.data.criteo_format import DataError
from dct.data.feature_schema import FeatureSchema

_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_PARQUET = (".parquet", ".pq")


def file_kind(path: Path) -> str:
    """``parquet``, or the CSV delimiter, from the file's name; ``DataError`` for another."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".gzip"):
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in _PARQUET:
        return "parquet"
    if last in _DELIMITERS:
        return _DELIMITERS[last]
    raise DataError(
        f"{path}: cannot tell the format from the name; name it .parquet, .csv or .tsv "
        "(optionally .gz)"
    )


def column_names(path: Path) -> list[str]:
    """The file's columns, from the Parquet schema or the CSV header; ``DataError`` for a
    missing, empty or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    kind = file_kind(path)
    try:
        if kind == "parquet":
            return list(pq.ParquetFile(path).schema_arrow.names)
        reader = pa_csv.open_csv(path, parse_options=pa_csv.ParseOptions(delimiter=kind))
        return list(reader.schema.names)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{path} cannot be read ({_first_line(error)})") from None


def check_columns(
    path: Path, schema: FeatureSchema, first: tuple[Path, list[str]] | None
) -> list[str]:
    """The file's columns, after checking it has every column the schema reads and, when
    ``first`` (a file and its columns) is given, the same columns as that file."""
    names = column_names(path)
    missing = [c for c in schema.columns() if c not in names]
    if missing:
        raise DataError(
            f"{path} has no column {missing[0]!r} that the schema names (its columns: "
            f"{', '.join(names)}); fix the schema or the file"
        )
    if first is not None and sorted(names) != sorted(first[1]):
        extra = sorted(set(names) ^ set(first[1]))
        raise DataError(
            f"{path}'s columns differ from {first[0]}'s (not in both: {', '.join(extra)}); "
            "every file of a run must have the same columns"
        )
    return names


def read_batches(path: Path, schema: FeatureSchema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The schema's columns of ``path``, ``batch_rows`` rows at a time."""
    columns = schema.columns()
    kind = file_kind(path)
    try:
        if kind == "parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns)
            return
        numeric = [f.column for f in schema.dense]
        if schema.label.threshold is not None:
            numeric.append(schema.label.column)
        types = {c: pa.float64() if c in numeric else pa.string() for c in columns}
        if schema.eval.time_column is not None and schema.eval.time_column not in numeric:
            types.pop(schema.eval.time_column)  # a timestamp or a number, as pyarrow reads it
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=_block_bytes(batch_rows)),
            parse_options=pa_csv.ParseOptions(delimiter=kind),
            convert_options=pa_csv.ConvertOptions(
                include_columns=columns, column_types=types, strings_can_be_null=True
            ),
        )
        for batch in reader:
            yield from (batch.slice(i, batch_rows) for i in range(0, batch.num_rows, batch_rows))
    except pa.ArrowInvalid as error:
        raise DataError(f"{path} cannot be read: {_explained(error, path)}") from None


def _block_bytes(batch_rows: int) -> int:
    """CSV bytes read at a time: about ``batch_rows`` rows of a few hundred bytes."""
    return max(1 << 20, min(batch_rows * 256, 1 << 28))


_CONVERSION = re.compile(r"CSV column #(\d+): Row #(\d+): CSV conversion error to \w+: (.*)")


def _explained(error: Exception, path: Path) -> str:
    """pyarrow's message, with a CSV column's name in place of its number."""
    text = _first_line(error)
    found = _CONVERSION.search(text)
    if found is None:
        return text
    column = column_names(path)[int(found.group(1))]
    return (
        f"line {found.group(2)}, column {column!r}: {found.group(3)}, where the schema "
        "declares a number"
    )


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
