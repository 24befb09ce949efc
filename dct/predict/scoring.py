"""``dct-predict CHECKPOINT FILE... --out PREDICTIONS.parquet [--id-column COL]``: new rows scored.

Reads new rows of the schema a model was trained on (Parquet, CSV or TSV, plain or gzip, as
``dct-preprocess`` reads them), ``--batch-rows`` at a time, encodes them with the training
rows' vocabularies and dense statistics (``dct.data.tabular_encode.Encoder``), and writes one
row per input row, in input order: the ``--id-column`` values, if asked for, and
``probability`` (float32). Memory holds one batch, the vocabularies and the model, never a
whole file. The model and the preprocessed directory are found as ``dct.predict.trained`` says.

New rows need no label column (a header-less CSV/TSV file one field short of the schema's
``columns`` is taken to lack it). Values a vocabulary lacks go to its out-of-vocabulary row, as in
the eval split, and are counted per column. Anything the user must fix is one ``error:`` line and
exit status 2; Ctrl-C is exit status 130. The output is written under a ``.partial`` name and
renamed once complete, so a file named ``PREDICTIONS.parquet`` is always a whole one.

Example::

    dct-predict outputs/run/checkpoints/step_00000400 new.parquet --out scores.parquet \\
        --id-column user_id
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dct.data.criteo_format import DataError
from dct.data.feature_schema import EvalSplit, FeatureSchema, LabelRule
from dct.data.tabular_encode import EncodedRows, Encoder
from dct.data.tabular_format import UNSEEN_ROW
from dct.data.tabular_read import check_columns, read_batches
from dct.predict.trained import PredictError, load_model, trained_on, vocabularies

DEFAULT_BATCH_ROWS = 65_536
PROBABILITY = "probability"
# The Encoder reads a label; new rows need none, so each batch is given this column of zeros.
_NO_LABEL = "\x00dct-predict: no label"


@dataclass(frozen=True)
class Predictions:
    """What ``predict`` wrote: rows, the directory that encoded them, the model's step, and per
    vocabulary column the values it did not know (sent to the out-of-vocabulary row)."""

    out: Path
    rows: int
    data: Path
    step: int
    unseen: dict[str, int]


def predict(
    checkpoint: Path,
    sources: list[Path],
    out: Path,
    id_column: str | None = None,
    data: Path | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Predictions:
    """Score ``sources`` with ``checkpoint``'s model into ``out`` (see the module).

    Raises ``DataError``, ``CheckpointError``, ``ExportError`` or ``PredictError`` (one line)
    for anything the user must fix, having left ``out`` as it was.
    """
    out = Path(out)
    if batch_rows < 1:
        raise PredictError(f"--batch-rows={batch_rows} must be >= 1")
    if out.is_dir():
        raise PredictError(f"--out {out} is a directory: give the file to write")
    trained = trained_on(checkpoint, data)
    schema = trained.schema
    files = [(Path(path), reading_schema(Path(path), schema, id_column)) for path in sources]
    encoder = Encoder(
        dataclasses.replace(schema, label=LabelRule(_NO_LABEL)),
        vocabularies(trained),
        trained.manifest.dense,
    )
    if encoder.table_rows != trained.manifest.table_sizes:
        raise DataError(
            f"{trained.data}'s vocabulary files give tables of {encoder.table_rows} rows, its "
            f"manifest {trained.manifest.table_sizes}; the files do not belong together"
        )
    partial = out.with_name(out.name + ".partial")
    try:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            partial.touch()
        except OSError as error:
            raise PredictError(f"cannot write {out}: {error.strerror}") from None
        model = load_model(trained)
        writer = _Writer(partial, id_column)
        unseen = [0] * len(schema.sparse)
        for path, batch, first_row in _batches(files, batch_rows):
            encoded = encoder.encode(_with_zero_label(batch), str(path), first_row)
            for k, feature in enumerate(schema.sparse):
                if not feature.hashed:
                    unseen[k] += int((encoded.values[k] == UNSEEN_ROW).sum())
            ids = None if id_column is None else batch.column(id_column)
            writer.write(ids, score(model, encoded), path)
        rows = writer.close()
        os.replace(partial, out)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
    return Predictions(
        out=out,
        rows=rows,
        data=trained.data,
        step=trained.step,
        unseen={f.column: n for f, n in zip(schema.sparse, unseen) if not f.hashed},
    )


def score(model: Any, rows: EncodedRows) -> np.ndarray:
    """Click probabilities (float32) of encoded rows."""
    import torch

    from dct.data.batch import Batch, SparseFeatures

    n = rows.labels.size
    values, offsets = [], []
    for flat, lengths in zip(rows.values, rows.lengths):
        bags = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.ones(n, np.int64) if lengths is None else lengths, out=bags[1:])
        values.append(torch.from_numpy(flat.astype(np.int64)))
        offsets.append(torch.from_numpy(bags))
    batch = Batch(
        dense=torch.from_numpy(np.ascontiguousarray(rows.dense, dtype=np.float32)),
        sparse=SparseFeatures(tuple(values), tuple(offsets)),
        labels=torch.zeros(n),
    )
    with torch.inference_mode():
        return torch.sigmoid(model(batch)).numpy()


def reading_schema(path: Path, schema: FeatureSchema, id_column: str | None) -> FeatureSchema:
    """The schema ``read_batches`` is given for ``path``, after checking that the file has every
    feature column and the id column.

    ``read_batches`` reads the label column and the eval time column, which new rows need not
    have, so the label's place holds the id column (or a feature column, read once) and the time
    column is dropped. A header-less CSV/TSV file (the schema's ``columns``) one column short,
    as test logs without labels are, is read as those columns without the label's.
    """
    if id_column == PROBABILITY:
        raise PredictError(
            f"--id-column {PROBABILITY!r} is the name of the output's probability column; "
            "rename that input column"
        )
    reading = dataclasses.replace(
        schema, label=LabelRule(schema.sparse[0].column), eval=EvalSplit()
    )
    try:
        names = check_columns(path, reading, None)
    except DataError as error:
        if schema.header is None or schema.label.column not in schema.header:
            raise
        header = tuple(c for c in schema.header if c != schema.label.column)
        reading = dataclasses.replace(reading, header=header)
        try:
            names = check_columns(path, reading, None)
        except DataError:
            raise error from None
    if id_column is not None and id_column not in names:
        raise DataError(
            f"--id-column {id_column!r} is not a column of {path} (its columns: {', '.join(names)})"
        )
    return (
        reading if id_column is None else dataclasses.replace(reading, label=LabelRule(id_column))
    )


def _batches(
    files: list[tuple[Path, FeatureSchema]], batch_rows: int
) -> Iterator[tuple[Path, pa.RecordBatch, int]]:
    """Every batch of each file read with its schema, in order, with its first row's number in
    its file."""
    for path, schema in files:
        first_row = 0
        for batch in read_batches(path, schema, batch_rows):
            yield path, batch, first_row
            first_row += batch.num_rows


def _with_zero_label(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch.append_column(_NO_LABEL, pa.array(np.zeros(batch.num_rows, np.int8)))


class _Writer:
    """The predictions, a Parquet row group per batch; the id column's type is the first
    file's, and later files' ids are cast to it."""

    def __init__(self, path: Path, id_column: str | None) -> None:
        self.path, self.id_column = path, id_column
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, ids: pa.Array | None, probability: np.ndarray, source: Path) -> None:
        columns, names = [pa.array(probability, pa.float32())], [PROBABILITY]
        if self.id_column is not None:
            if self.writer is not None:
                wanted = self.writer.schema.field(self.id_column).type
                try:
                    ids = pc.cast(ids, wanted)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise DataError(
                        f"{source}: the id column {self.id_column!r} holds {ids.type}, which "
                        f"cannot be written as the earlier files' {wanted}"
                    ) from None
            columns, names = [ids, *columns], [self.id_column, *names]
        table = pa.Table.from_arrays(columns, names=names)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> int:
        if self.writer is None:  # no rows at all: an empty file with the columns
            fields = [pa.field(PROBABILITY, pa.float32())]
            if self.id_column is not None:
                fields.insert(0, pa.field(self.id_column, pa.string()))
            self.writer = pq.ParquetWriter(self.path, pa.schema(fields))
        self.writer.close()
        return self.rows


_EPILOG = """\
examples:
  dct-predict outputs/run/checkpoints/step_00000400 new.parquet --out scores.parquet
  dct-predict CHECKPOINT day8.csv.gz day9.csv.gz --out scores.parquet --id-column request_id \\
      --data data/clicks

exit status: 0 done; 2 input, checkpoint, data directory or option to fix (one "error:" line);
130 interrupted (no output file written)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dct-predict",
        description="Click probabilities of new rows (Parquet, CSV or TSV, plain or gzip) from a "
        "model trained on data=tabular, on one process, from a checkpoint of any grid.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        type=Path,
        help="a checkpoint directory (step_NNNNNNNN), or a run's checkpoints/ (its newest)",
    )
    parser.add_argument(
        "sources", type=Path, nargs="+", metavar="FILE", help="rows to score, read in order"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the Parquet file to write, one row per input row"
    )
    parser.add_argument(
        "--id-column", metavar="COL", help="an input column to copy into the output beside it"
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="the dct-preprocess directory the model was trained on; default: the one the "
        "checkpoint's run names",
    )
    parser.add_argument(
        "--batch-rows",
        type=int,
        default=DEFAULT_BATCH_ROWS,
        metavar="ROWS",
        help="rows read and scored at a time; default: %(default)s",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``dct-predict CHECKPOINT FILE... --out OUT``: the exit status, 2 for anything the user must
    fix (one ``error:`` line, no traceback), 130 when interrupted."""
    args = _parser().parse_args(argv)
    from dct.checkpoint.store import CheckpointError
    from dct.config import ConfigError
    from dct.export import ExportError
    from dct.runtime import log_levels
    from dct.runtime.threads import set_threads

    log_levels.quiet_tool(format="%(levelname)s: %(message)s")
    try:
        set_threads(None)
        done = predict(**vars(args))
    except (DataError, CheckpointError, ExportError, PredictError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {args.out} was not written", file=sys.stderr)
        return 130
    unseen = sum(done.unseen.values())
    per_column = ", ".join(f"{column} {n:,}" for column, n in done.unseen.items() if n)
    print(
        f"{done.out}: {done.rows:,} rows scored by the step-{done.step} model, encoded by "
        f"{done.data}; {unseen:,} values out of vocabulary"
        + (f" ({per_column})" if per_column else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
