"""``dct-preprocess``: a team's own Parquet, CSV or TSV files into the arrays dct trains on.

Reads the columns a schema (``dct.data.feature_schema``) names, in batches of ``--batch-rows``
rows, in two passes over the training files: the first counts vocabularies and dense statistics
on the training rows only, the second encodes every row (``dct.data.tabular_encode``) and
appends it to its split (``dct.data.tabular_format``). Memory holds two batches (one read ahead)
and the vocabularies' distinct values, never a whole file. The eval split is ``--eval`` files,
or the schema's ``eval.fraction`` of the rows: the last in file order, or with
``eval.time_column`` those after the time below which the other rows lie (rows at that time stay
in training; the time column is read once more, 8 bytes a row, to find it).

The manifest is written last: a directory without one is unfinished, and running the same
command again resumes it after the last batch written (``dct.data.tabular_preprocess_state``
keeps how far it got; a run stopped in the statistics pass counts again from the start). A
rerun with another schema, other files or another ``--batch-rows`` is refused.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dct.data.criteo_format import DataError, SourceFile
from dct.data.feature_schema import FeatureSchema, load_schema
from dct.data.tabular_encode import Encoder, Statistics, numeric
from dct.data.tabular_format import (
    MANIFEST,
    SPLITS,
    UNSEEN_ROW,
    TableInfo,
    TabularManifest,
    vocabulary_file,
    write_manifest,
)
from dct.data.tabular_preprocess_state import (
    PROGRESS,
    TabularProgress,
    load_vocabularies,
    options,
    require_same,
    save_statistics,
    split_writers,
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
    out = Path(out)
    progress = _prepare(out, features, sources, eval_sources, batch_rows)
    try:
        manifest = _encode(out, features, sources, eval_sources, batch_rows, progress)
    except DataError:
        # The inputs must change before this can finish, so a rerun will be started on other
        # files: it starts over rather than being refused as another run.
        (out / PROGRESS).unlink(missing_ok=True)
        raise
    write_manifest(out, manifest)
    (out / PROGRESS).unlink()
    (out / UNFINISHED).unlink()
    return manifest


def _encode(
    out: Path,
    features: FeatureSchema,
    sources: list[Path],
    eval_sources: list[Path],
    batch_rows: int,
    progress: TabularProgress,
) -> TabularManifest:
    """Both passes, from where ``progress`` says; the manifest to write."""
    splitter = _splitter(features, sources, batch_rows) if not eval_sources else None

    if progress.dense is None:
        stats = Statistics(features)
        for _, path, batch, _, start, _ in _batches(sources, features, batch_rows):
            if splitter is not None:
                batch = batch.filter(pa.array(~splitter(batch, start)))
            stats.observe(batch, str(path))
        vocabularies = stats.vocabularies()
        progress.unseen = [0] * len(features.sparse)
        save_statistics(out, progress, vocabularies, stats.dense_stats())
    else:
        vocabularies = load_vocabularies(out, features)
    encoder = Encoder(features, vocabularies, progress.dense)

    writers = split_writers(out, features, progress)
    try:
        paths = [*sources, *eval_sources]
        batches = _batches(paths, features, batch_rows, progress.file, progress.row, progress.start)
        for index, path, batch, first_row, start, last in batches:
            encoded = encoder.encode(batch, str(path), first_row)
            if splitter is None:
                parts = {"train" if index < len(sources) else "eval": encoded}
            else:
                to_eval = splitter(batch, start)
                parts = {"train": encoded.rows(~to_eval), "eval": encoded.rows(to_eval)}
            for name, part in parts.items():
                writers[name].write(part)
            held_out = parts.get("eval")
            if held_out is not None:
                for k, vocabulary in enumerate(vocabularies):
                    if vocabulary is not None:
                        progress.unseen[k] += int((held_out.values[k] == UNSEEN_ROW).sum())
            for writer in writers.values():
                writer.sync()
            # After a file's last batch, point at the next file: a resume need not read it again.
            progress.file, progress.row = (
                (index + 1, 0) if last else (index, first_row + batch.num_rows)
            )
            progress.start = start + batch.num_rows
            progress.splits = {split: writer.info() for split, writer in writers.items()}
            progress.save(out)
    finally:
        splits = {split: writer.close() for split, writer in writers.items()}
    for split, info in splits.items():
        if info.rows == 0:
            raise DataError(
                f"the {split} split has no rows; give more rows, another eval.fraction or "
                "--eval files"
            )
    tables = [
        TableInfo(
            feature.column,
            encoder.table_rows[k],
            feature.multi_valued,
            None if vocabulary is None else vocabulary_file(k),
            feature.table,
            feature.pooling,
        )
        for k, (feature, vocabulary) in enumerate(zip(features.sparse, vocabularies))
    ]
    manifest = TabularManifest(
        schema=features.to_dict(),
        schema_fingerprint=features.fingerprint(),
        splits=splits,
        dense=encoder.dense,
        tables=tables,
        sources={
            split: [SourceFile(str(p), f.size, f.sha256) for p, f in zip(named, files)]
            for (split, files), named in zip(progress.sources.items(), (sources, eval_sources))
        },
        group_column=features.group,
        unseen_eval_values={
            f.column: n
            for f, n, v in zip(features.sparse, progress.unseen, vocabularies)
            if v is not None
        },
    )
    return manifest


def _prepare(
    out: Path,
    schema: FeatureSchema,
    sources: list[Path],
    eval_sources: list[Path],
    batch_rows: int,
) -> TabularProgress:
    """``out`` ready to be written, and how far it got: new, empty, or an unfinished run of this
    command (resumed from its progress file if it got past the statistics pass, else redone)."""
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
    # The manifest needs every file's SHA-256 anyway; taken first, it also tells a rerun
    # whether it was started on the same files.
    progress = TabularProgress(
        options(schema, batch_rows),
        {
            "train": [_source_file(p) for p in sources],
            "eval": [_source_file(p) for p in eval_sources],
        },
    )
    if (out / PROGRESS).is_file():
        found = TabularProgress.load(out)
        require_same(out, found, progress)
        if found.dense is not None:
            return found
        log.info("%s stopped in its statistics pass; counting again", out)
    try:
        for split in SPLITS:
            shutil.rmtree(out / split, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / UNFINISHED).touch()
        progress.save(out)
    except OSError as error:
        raise DataError(f"{out} cannot be written ({error.strerror})") from None
    return progress


def _batches(
    paths: list[Path],
    schema: FeatureSchema,
    batch_rows: int,
    file: int = 0,
    row: int = 0,
    start: int = 0,
) -> Iterator[tuple[int, Path, pa.RecordBatch, int, int, bool]]:
    """Every batch of ``paths`` from row ``row`` of file ``file`` (``start``: that row's number
    in all of them), with its file's index, its first row's number in its file and in all of
    them, and whether it is its file's last. Rows before ``row`` are read and skipped (CSV has
    no index to seek by); one batch is read ahead to know which is a file's last."""
    for index in range(file, len(paths)):
        path, skip, first_row, ahead = paths[index], row if index == file else 0, 0, None
        for batch in read_batches(path, schema, batch_rows):
            if first_row + batch.num_rows <= skip:
                first_row += batch.num_rows
                continue
            if first_row < skip:
                batch, first_row = batch.slice(skip - first_row), skip
            if ahead is not None:
                yield *ahead, False
            ahead = (index, path, batch, first_row, start)
            first_row += batch.num_rows
            start += batch.num_rows
        if first_row == 0:
            raise DataError(f"{path} has no rows")
        if ahead is not None:
            yield *ahead, True


def _splitter(schema: FeatureSchema, sources: list[Path], batch_rows: int) -> Splitter:
    """Which rows go to eval when no eval files are given."""
    fraction, time_column = schema.eval.fraction, schema.eval.time_column
    if time_column is None:
        total = sum(b.num_rows for _, _, b, _, _, _ in _batches(sources, schema, batch_rows))
        first_eval = total - int(round(total * fraction))
        return lambda batch, start: np.arange(start, start + batch.num_rows) >= first_eval
    times = np.concatenate(
        [
            _times(b.column(time_column), str(p))
            for _, p, b, _, _, _ in _batches(sources, schema, batch_rows)
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
        help="output directory: new, empty, or an unfinished run of this command (resumed)",
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
