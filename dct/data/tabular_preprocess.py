"""``dct-preprocess``: a team's own Parquet, CSV or TSV files into the arrays dct trains on.

Reads the columns a schema (``dct.data.feature_schema``) names, in batches of ``--batch-rows``
rows, in two passes over the training files: the first counts vocabularies and dense
statistics on the training rows only, the second encodes every row (``dct.data.tabular_encode``)
and appends it to its split (``dct.data.tabular_format``). Memory holds one batch and the
vocabularies' distinct values, never a whole file. The eval split is ``--eval`` files, or the
schema's ``eval.fraction`` of the rows: the last in file order, or with ``eval.time_column``
those after the time below which the other rows lie (rows at that time stay in training; the
time column is read once more, 8 bytes a row, to find it).

The manifest is written last: a directory without one is unfinished, and running the same
command again starts it over.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dct.data.criteo_format import DataError, SourceFile
from dct.data.feature_schema import FeatureSchema, load_schema
from dct.data.tabular_encode import EncodedRows, Encoder, Statistics, numeric
from dct.data.tabular_format import (
    DENSE,
    LABELS,
    MANIFEST,
    OFFSETS_DTYPE,
    SPLITS,
    UNSEEN_ROW,
    VALUES_DTYPE,
    SplitInfo,
    TableInfo,
    TabularManifest,
    offsets_file,
    values_file,
    vocabulary_file,
    write_manifest,
)
from dct.data.tabular_read import check_columns, read_batches
from dct.runtime import log_levels

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 65_536
UNFINISHED = ".dct-preprocess-unfinished"

# (split of each row: True for eval) from a batch and its first row's number in the whole input
Splitter = Callable[[pa.RecordBatch, int], np.ndarray]


def preprocess(
    schema: Path,
    out: Path,
    sources: list[Path],
    eval_sources: list[Path] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> TabularManifest:
    """Writes ``out`` from ``sources`` (and ``eval_sources``) as ``schema`` says; returns its
    manifest. ``DataError`` (one line) for anything the user must fix."""
    if batch_rows < 1:
        raise DataError(f"--batch-rows={batch_rows} must be >= 1")
    features = load_schema(schema)
    eval_sources = list(eval_sources or [])
    first: tuple[Path, list[str]] | None = None
    for path in [*sources, *eval_sources]:
        names = check_columns(path, features, first)
        first = first or (path, names)
    _prepare(Path(out))
    splitter = _splitter(features, sources, batch_rows) if not eval_sources else None

    stats = Statistics(features)
    for path, batch, first_row, start in _batches(sources, features, batch_rows):
        if splitter is not None:
            batch = batch.filter(pa.array(~splitter(batch, start)))
        stats.observe(batch, str(path))
    vocabularies = stats.vocabularies()
    encoder = Encoder(features, vocabularies, stats.dense_stats())

    writers = {split: _SplitWriter(Path(out) / split, features) for split in SPLITS}
    unseen = [0] * len(features.sparse)
    inputs = [("train", sources)] + ([("eval", eval_sources)] if eval_sources else [])
    for split, paths in inputs:
        for path, batch, first_row, start in _batches(paths, features, batch_rows):
            encoded = encoder.encode(batch, str(path), first_row)
            if splitter is None:
                parts = {split: encoded}
            else:
                to_eval = splitter(batch, start)
                parts = {"train": encoded.rows(~to_eval), "eval": encoded.rows(to_eval)}
            for name, part in parts.items():
                writers[name].write(part)
            held_out = parts.get("eval")
            if held_out is not None:
                for k, vocabulary in enumerate(vocabularies):
                    if vocabulary is not None:
                        unseen[k] += int((held_out.values[k] == UNSEEN_ROW).sum())
    splits = {split: writer.close() for split, writer in writers.items()}
    for split, info in splits.items():
        if info.rows == 0:
            raise DataError(
                f"the {split} split has no rows; give more rows, another eval.fraction or "
                "--eval files"
            )
    tables = []
    for k, (feature, vocabulary) in enumerate(zip(features.sparse, vocabularies)):
        if vocabulary is not None:
            (Path(out) / vocabulary_file(k)).parent.mkdir(exist_ok=True)
            pq.write_table(
                pa.table({"value": pa.array(vocabulary, pa.string())}),
                Path(out) / vocabulary_file(k),
            )
        tables.append(
            TableInfo(
                feature.column,
                encoder.table_rows[k],
                feature.multi_valued,
                None if vocabulary is None else vocabulary_file(k),
            )
        )
    manifest = TabularManifest(
        schema=features.to_dict(),
        schema_fingerprint=features.fingerprint(),
        splits=splits,
        dense=encoder.dense,
        tables=tables,
        sources={
            "train": [_source_file(p) for p in sources],
            "eval": [_source_file(p) for p in eval_sources],
        },
        unseen_eval_values={
            f.column: n for f, n, v in zip(features.sparse, unseen, vocabularies) if v is not None
        },
    )
    write_manifest(Path(out), manifest)
    (Path(out) / UNFINISHED).unlink()
    return manifest


def _prepare(out: Path) -> None:
    """``out`` ready to be written: new, empty, or an unfinished run of this command (redone)."""
    if (out / MANIFEST).exists():
        raise DataError(
            f"{out} already holds a finished dct-preprocess output; choose another --out or "
            "delete it"
        )
    if out.exists() and any(out.iterdir()) and not (out / UNFINISHED).exists():
        raise DataError(
            f"{out} is not empty and not an unfinished dct-preprocess output; choose a new or "
            "empty directory"
        )
    try:
        for split in SPLITS:
            shutil.rmtree(out / split, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / UNFINISHED).touch()
    except OSError as error:
        raise DataError(f"{out} cannot be written ({error.strerror})") from None


def _batches(
    paths: list[Path], schema: FeatureSchema, batch_rows: int
) -> Iterator[tuple[Path, pa.RecordBatch, int, int]]:
    """Every batch of ``paths`` with its first row's number in its file and in all of them."""
    start = 0
    for path in paths:
        first_row = 0
        for batch in read_batches(path, schema, batch_rows):
            yield path, batch, first_row, start
            first_row += batch.num_rows
            start += batch.num_rows
        if first_row == 0:
            raise DataError(f"{path} has no rows")


def _splitter(schema: FeatureSchema, sources: list[Path], batch_rows: int) -> Splitter:
    """Which rows go to eval when no eval files are given."""
    fraction, time_column = schema.eval.fraction, schema.eval.time_column
    if time_column is None:
        total = sum(b.num_rows for _, b, _, _ in _batches(sources, schema, batch_rows))
        first_eval = total - int(round(total * fraction))
        return lambda batch, start: np.arange(start, start + batch.num_rows) >= first_eval
    times = np.concatenate(
        [
            _times(b.column(time_column), str(p))
            for p, b, _, _ in _batches(sources, schema, batch_rows)
        ]
    )
    if np.isnan(times).any():
        raise DataError(f"the time column {time_column!r} has empty values; every row needs a time")
    train_rows = times.size - int(round(times.size * fraction))
    cutoff = np.partition(times, train_rows - 1)[train_rows - 1] if train_rows else -np.inf
    return lambda batch, start: _times(batch.column(time_column), "") > cutoff


def _times(column: pa.Array, where: str) -> np.ndarray:
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        column = pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64())
    return numeric(column, where, "time")


@dataclass
class _SplitWriter:
    """Appends encoded rows to one split's files."""

    directory: Path
    schema: FeatureSchema

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rows = 0
        self.counts = [0] * len(self.schema.sparse)
        self.files: dict[str, BinaryIO] = {
            LABELS: open(self.directory / LABELS, "wb"),
            DENSE: open(self.directory / DENSE, "wb"),
        }
        for k, feature in enumerate(self.schema.sparse):
            self.files[values_file(k)] = open(self.directory / values_file(k), "wb")
            if feature.multi_valued:
                self.files[offsets_file(k)] = open(self.directory / offsets_file(k), "wb")
                self.files[offsets_file(k)].write(np.zeros(1, OFFSETS_DTYPE).tobytes())

    def write(self, rows: EncodedRows) -> None:
        self.files[LABELS].write(rows.labels.astype(np.uint8).tobytes())
        self.files[DENSE].write(rows.dense.astype("<f4").tobytes())
        for k, (values, lengths) in enumerate(zip(rows.values, rows.lengths)):
            self.files[values_file(k)].write(values.astype(VALUES_DTYPE).tobytes())
            if lengths is not None:
                ends = self.counts[k] + np.cumsum(lengths)
                self.files[offsets_file(k)].write(ends.astype(OFFSETS_DTYPE).tobytes())
            self.counts[k] += values.size
        self.rows += rows.labels.size

    def close(self) -> SplitInfo:
        for handle in self.files.values():
            handle.close()
        return SplitInfo(self.rows, list(self.counts))


def _source_file(path: Path) -> SourceFile:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return SourceFile(str(path), Path(path).stat().st_size, digest.hexdigest())


_EPILOG = """\
examples:
  dct-preprocess --schema configs/schemas/adult.yaml --out data/adult adult.parquet
  dct-preprocess --schema mine.yaml --out data/clicks day1.csv.gz day2.csv.gz --eval day3.csv.gz
  torchrun --standalone --nproc_per_node=2 launch/train.py data=tabular data.path=data/adult

exit status: 0 done; 2 input, schema, output or option to fix (one "error:" line);
130 interrupted."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dct-preprocess",
        description="Your own Parquet, CSV or TSV files (plain or gzip), with the features a "
        "schema declares, into the arrays dct trains on (data=tabular data.path=OUT).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--schema", type=Path, required=True, help="the feature schema (YAML)")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output directory: new, empty, or an unfinished run of this command (started over)",
    )
    parser.add_argument(
        "sources", type=Path, nargs="+", metavar="FILE", help="training files, read in order"
    )
    parser.add_argument(
        "--eval",
        dest="eval_sources",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="eval files; without them the schema's eval.fraction of the rows is held out",
    )
    parser.add_argument(
        "--batch-rows",
        type=int,
        default=DEFAULT_BATCH_ROWS,
        metavar="ROWS",
        help="rows read and encoded at a time; default: %(default)s",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``dct-preprocess --schema SCHEMA --out DIR FILE... [--eval FILE...]``: the exit status,
    2 for anything the user must fix (one ``error:`` line, no traceback), 130 when interrupted."""
    args = _parser().parse_args(argv)
    log_levels.quiet_tool(format="%(levelname)s: %(message)s")
    try:
        manifest = preprocess(**vars(args))
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {args.out} is unfinished; run the same command again", file=sys.stderr)
        return 130
    rows = ", ".join(f"{split} {info.rows:,} rows" for split, info in manifest.splits.items())
    unseen = sum(manifest.unseen_eval_values.values())
    print(
        f"{args.out}: {rows}; tables {manifest.table_sizes}; "
        f"{unseen:,} eval values unseen in training"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
