"""The resumable state of a ``dct-preprocess`` run, kept on disk beside its output.

``progress.json`` (written atomically) says what the run was started on (the schema's
fingerprint, ``--batch-rows``, and the size and SHA-256 of every train and eval file) and how far
it got. Until the statistics pass ends it holds no statistics, and a rerun counts again from the
start: that pass writes nothing else, and its counters (one per distinct value) would have to
be saved after every batch. At its end the vocabularies are written to their final Parquet
files and the dense statistics into ``progress.json``; from then on, after every batch encoded,
it records each split's rows and values written and the next input row (file, and row in that
file). A rerun
checks that it is the same run, then cuts each array back to the recorded size: the arrays
reach the disk before the record, so they may hold a batch more than recorded, never less.

The arrays keep their final names while they grow (unlike Criteo's ``.partial`` ones): the
manifest, written last, is what marks this output finished, so a reader never takes them for
done.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dct.data.criteo_format import DataError, SourceFile
from dct.data.criteo_preprocess_state import write_atomic
from dct.data.feature_schema import FeatureSchema
from dct.data.tabular_encode import EncodedRows
from dct.data.tabular_format import (
    DENSE,
    DENSE_DTYPE,
    GROUP_DTYPE,
    GROUPS,
    LABEL_DTYPE,
    LABELS,
    OFFSETS_DTYPE,
    SPLITS,
    VALUES_DTYPE,
    DenseStats,
    SplitInfo,
    offsets_file,
    values_file,
    vocabulary_file,
)

log = logging.getLogger(__name__)

PROGRESS = "progress.json"


@dataclass
class TabularProgress:
    """What a run was started on and how far it got; ``dense`` is ``None`` until the statistics
    pass has ended. ``file`` indexes the train files then the eval files; ``row`` is the next
    row of that file, ``start`` the next row's number in all of them together."""

    options: dict
    sources: dict[str, list[SourceFile]]
    dense: list[DenseStats] | None = None
    file: int = 0
    row: int = 0
    start: int = 0
    splits: dict[str, SplitInfo] = field(default_factory=dict)
    unseen: list[int] = field(default_factory=list)

    def save(self, out: Path) -> None:
        write_atomic(out / PROGRESS, json.dumps(asdict(self)).encode())

    @staticmethod
    def load(out: Path) -> TabularProgress:
        path = out / PROGRESS
        try:
            raw = json.loads(path.read_text())
            sources = {s: [SourceFile(**f) for f in files] for s, files in raw["sources"].items()}
            dense = raw["dense"] and [DenseStats(**d) for d in raw["dense"]]
            splits = {s: SplitInfo(**info) for s, info in raw["splits"].items()}
            return TabularProgress(**{**raw, "sources": sources, "dense": dense, "splits": splits})
        except (ValueError, TypeError, KeyError) as error:
            raise DataError(f"{path} is not a progress file ({error}); delete {out}") from None


def options(schema: FeatureSchema, batch_rows: int) -> dict:
    # The batch size is part of the run: the dense moments are summed batch by batch.
    return {"schema": schema.fingerprint(), "batch_rows": batch_rows}


def require_same(out: Path, old: TabularProgress, new: TabularProgress) -> None:
    """``DataError`` naming what differs if ``new`` is not the run ``old`` was started as."""
    if old.options["schema"] != new.options["schema"]:
        difference = "with another schema"
    elif old.options["batch_rows"] != new.options["batch_rows"]:
        difference = (
            f"with --batch-rows={old.options['batch_rows']} (now {new.options['batch_rows']})"
        )
    else:
        for split in ("train", "eval"):
            before, now = old.sources.get(split, []), new.sources.get(split, [])
            if [(f.size, f.sha256) for f in before] != [(f.size, f.sha256) for f in now]:
                names = ", ".join(f.path for f in before) or "none"
                what = "training files" if split == "train" else "--eval files"
                difference = f"from other {what} ({names}; count, sizes or SHA-256 differ)"
                break
        else:
            return
    raise DataError(
        f"{out} holds an unfinished dct-preprocess run started {difference}; run that command "
        f"again to finish it, or choose a new --out, or delete {out} to start again"
    )


def save_statistics(
    out: Path,
    progress: TabularProgress,
    vocabularies: list[list[str] | None],
    dense: list[DenseStats],
) -> None:
    """The statistics pass's result on disk: vocabularies first, then the record saying so."""
    for k, vocabulary in enumerate(vocabularies):
        if vocabulary is not None:
            path = out / vocabulary_file(k)
            path.parent.mkdir(exist_ok=True)
            table = pa.table({"value": pa.array(vocabulary, pa.string())})
            write_atomic(path, lambda file, table=table: pq.write_table(table, file))
    progress.dense = dense
    progress.save(out)


def load_vocabularies(out: Path, schema: FeatureSchema) -> list[list[str] | None]:
    return [
        None if f.hashed else pq.read_table(out / vocabulary_file(k)).column("value").to_pylist()
        for k, f in enumerate(schema.sparse)
    ]


class SplitWriter:
    """Appends encoded rows to one split's files, from ``info``'s rows and values (files cut
    back to that size: a resumed run's)."""

    def __init__(self, directory: Path, schema: FeatureSchema, info: SplitInfo | None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        info = info or SplitInfo(0, [0] * len(schema.sparse))
        self.rows, self.counts = info.rows, list(info.values)
        sizes = {
            LABELS: self.rows * LABEL_DTYPE.itemsize,
            DENSE: self.rows * len(schema.dense) * DENSE_DTYPE.itemsize,
        }
        if schema.group is not None:
            sizes[GROUPS] = self.rows * GROUP_DTYPE.itemsize
        for k, feature in enumerate(schema.sparse):
            sizes[values_file(k)] = self.counts[k] * VALUES_DTYPE.itemsize
            if feature.multi_valued:
                sizes[offsets_file(k)] = (self.rows + 1) * OFFSETS_DTYPE.itemsize
        self.files: dict[str, BinaryIO] = {}
        for name, size in sizes.items():
            path = directory / name
            if self.rows and (not path.exists() or path.stat().st_size < size):
                raise DataError(
                    f"{path} is shorter than {PROGRESS} says; run the same command again "
                    "to start over"
                )
            self.files[name] = open(path, "ab")  # noqa: SIM115 (closed by close())
            self.files[name].truncate(size if self.rows else 0)
        for k, feature in enumerate(schema.sparse):
            if feature.multi_valued and not self.rows:
                self.files[offsets_file(k)].write(np.zeros(1, OFFSETS_DTYPE).tobytes())

    def write(self, rows: EncodedRows) -> None:
        self.files[LABELS].write(rows.labels.astype(LABEL_DTYPE).tobytes())
        self.files[DENSE].write(rows.dense.astype(DENSE_DTYPE).tobytes())
        if rows.groups is not None:
            self.files[GROUPS].write(rows.groups.astype(GROUP_DTYPE).tobytes())
        for k, (values, lengths) in enumerate(zip(rows.values, rows.lengths)):
            self.files[values_file(k)].write(values.astype(VALUES_DTYPE).tobytes())
            if lengths is not None:
                ends = self.counts[k] + np.cumsum(lengths)
                self.files[offsets_file(k)].write(ends.astype(OFFSETS_DTYPE).tobytes())
            self.counts[k] += values.size
        self.rows += rows.labels.size

    def sync(self) -> None:
        # On disk before the progress file says so: a resumed run may find more than recorded
        # (it cuts it off), never less.
        for file in self.files.values():
            file.flush()
            os.fsync(file.fileno())

    def info(self) -> SplitInfo:
        return SplitInfo(self.rows, list(self.counts))

    def close(self) -> SplitInfo:
        for handle in self.files.values():
            handle.close()
        return self.info()


def split_writers(
    out: Path, schema: FeatureSchema, progress: TabularProgress
) -> dict[str, SplitWriter]:
    if progress.file or progress.row:
        log.info("resuming %s at input file %d, row %d", out, progress.file, progress.row)
    return {s: SplitWriter(out / s, schema, progress.splits.get(s)) for s in SPLITS}
