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

CSV_BLOCK_BYTES = 1 << 20
"""CSV/TSV bytes parsed at a time. Larger blocks grow the process (pages freed by one block are
not reused by the next) without reading faster: 1 MB keeps a 1M-row file's reading flat."""

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


def column_names(path: Path, header: tuple[str, ...] | None = None) -> list[str]:
    """The file's columns, from the Parquet schema, the CSV header, or ``header`` for a CSV
    file without one; ``DataError`` for a missing, empty or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    kind = file_kind(path)
    try:
        if kind == "parquet":
            return list(pq.ParquetFile(path).schema_arrow.names)
        reader = pa_csv.open_csv(
            path, read_options=_read_options(header), parse_options=_parse_options(kind)
        )
        return list(reader.schema.names)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{path} cannot be read ({_first_line(error)})") from None


def check_columns(
    path: Path, schema: FeatureSchema, first: tuple[Path, list[str]] | None
) -> list[str]:
    """The file's columns, after checking it has every column the schema reads and, when
    ``first`` (a file and its columns) is given, the same columns as that file."""
    names = column_names(path, schema.header)
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
            _stream(path),
            read_options=_read_options(schema.header, CSV_BLOCK_BYTES),
            parse_options=_parse_options(kind),
            convert_options=pa_csv.ConvertOptions(
                include_columns=columns, column_types=types, strings_can_be_null=True
            ),
        )
        yield from _rebatched(reader, batch_rows)
    except pa.ArrowInvalid as error:
        raise DataError(
            f"{path} cannot be read: {_explained(error, path, schema.header)}"
        ) from None


def _stream(path: Path) -> pa.NativeFile:
    """The file as a stream: read a block at a time (pyarrow's own file reader reads ahead
    far more than one block), decompressed if its name ends in .gz."""
    raw = pa.PythonFile(open(path, "rb"), mode="r")  # noqa: SIM115 (closed with the stream)
    if str(path).lower().endswith((".gz", ".gzip")):
        return pa.CompressedInputStream(raw, "gzip")
    return raw


def _read_options(header: tuple[str, ...] | None, block: int | None = None) -> pa_csv.ReadOptions:
    options = pa_csv.ReadOptions(
        column_names=None if header is None else list(header), use_threads=False
    )
    if block is not None:
        options.block_size = block
    return options


def _parse_options(delimiter: str) -> pa_csv.ParseOptions:
    # Quotes are text in TSV logs (Criteo's); CSV keeps its quoting rules.
    return pa_csv.ParseOptions(delimiter=delimiter, quote_char='"' if delimiter == "," else False)


def _rebatched(blocks: Iterator[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """``blocks`` joined and cut into batches of ``batch_rows`` rows (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for block in blocks:
        pending.append(block)
        rows += block.num_rows
        while rows >= batch_rows:
            table = pa.Table.from_batches(pending)
            yield from table.slice(0, batch_rows).combine_chunks().to_batches()
            rest = table.slice(batch_rows)
            pending, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield from pa.Table.from_batches(pending).combine_chunks().to_batches()


_CONVERSION = re.compile(r"CSV column #(\d+): Row #(\d+): CSV conversion error to \w+: (.*)")


def _explained(error: Exception, path: Path, header: tuple[str, ...] | None) -> str:
    """pyarrow's message, with a CSV column's name in place of its number."""
    text = _first_line(error)
    found = _CONVERSION.search(text)
    if found is None:
        return text
    column = column_names(path, header)[int(found.group(1))]
    return (
        f"line {found.group(2)}, column {column!r}: {found.group(3)}, where the schema "
        "declares a number"
    )


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
