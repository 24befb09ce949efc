"""Streaming, resumable preprocessing of Criteo TSV click logs into ``dct.data.criteo_format``.

The files (plain or gzip, told apart by their first two bytes) are read in order, ``chunk_rows``
lines at a time; each chunk is parsed (``criteo_lines``), its categorical values are mapped to
table indices, and it is appended to ``dense.f32.partial``, ``sparse.i32.partial`` and
``labels.u8.partial``. After every chunk ``progress.json`` records, atomically, how far the run
got, so rerunning the same command after a crash or a kill truncates the partial arrays to that
point and goes on: the result is byte-identical to an uninterrupted run. At the end the arrays
are renamed into place and ``manifest.json`` is written, last. (The on-disk state of a run, and
the checks that a rerun is the same run, are ``dct.data.criteo_preprocess_state``.)

A UTF-8 byte-order mark at the start of a file (as some Windows tools write) is skipped, not
taken for part of the first line. An output directory that cannot be created or written is a
``DataError`` naming it; whatever a failed run leaves there has no manifest, so it never reads as
finished (rerunning resumes it).

Memory is bounded by the chunk size, whatever the size of the files. ``vocab`` mode also holds
every distinct value of every column with its count (16 bytes each, up to twice while merging)
during its counting pass, and the frequent values while writing: no single pass can avoid that.
Its vocabulary is saved (``vocabulary.npz``) so that a resumed run does not count again.

Defaults:

- ``hash_size=1_000_000``: 26 tables of 1M rows at the default embedding width 16 are 1.7 GB of
  float32 weights, which one host holds; columns with far fewer distinct values rarely collide,
  and only the few Criteo columns with millions of values share rows much. For comparison, the
  DLRM reference trains Kaggle on its full vocabulary (about 34M ids: ``vocab`` mode with
  ``min_count=1``) and caps Terabyte tables at 10M rows (MLPerf: 40M).
- ``min_count=4``: a value seen fewer than four times gets a handful of gradient updates per
  epoch, too few to learn an embedding from, yet such values are the bulk of the distinct
  values of a click log; sharing index 0 among them keeps the tables small.
- ``chunk_rows=100_000``: parsing needs about 1.7 KB per row of the chunk (some 170 MB, see
  ``benchmarks/criteo_preprocess_memory.py``), enough rows that the per-chunk costs (fsync,
  progress file) vanish, few enough to lose little work to a crash.
"""

from __future__ import annotations

import argparse
import codecs
import functools
import gzip
import itertools
import logging
import os
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dct.data.criteo_format import (
    ARRAYS,
    MANIFEST,
    NUM_SPARSE,
    DataError,
    Manifest,
    SourceFile,
    read_manifest,
)
from dct.data.criteo_lines import (
    ParsedLines,
    ValueCounts,
    Vocabulary,
    hash_indices,
    parse_lines,
)
from dct.data.criteo_preprocess_state import (
    EXAMPLES,
    PARTIAL,
    PROGRESS,
    VOCABULARY,
    Chunk,
    PartialArrays,
    PreprocessProgress,
    checked_options,
    describe_source,
    remove_run_files,
    require_same,
    start_or_resume,
    write_atomic,
)
from dct.runtime import log_levels

log = logging.getLogger(__name__)

DEFAULT_HASH_SIZE = 1_000_000
DEFAULT_MIN_COUNT = 4
DEFAULT_CHUNK_ROWS = 100_000


def preprocess(
    sources: list[Path],
    out_dir: Path,
    *,
    mode: str = "hash",
    hash_size: int = DEFAULT_HASH_SIZE,
    min_count: int = DEFAULT_MIN_COUNT,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    strict: bool = False,
    progress: bool = True,
) -> Manifest:
    """Preprocess the Criteo TSV ``sources``, in order, into ``out_dir``; return its manifest.

    Resumes an unfinished run of the same command and returns at once when ``out_dir`` is
    already finished from the same sources and options. Malformed lines are skipped and counted
    (the first one raises with ``strict``). Raises ``DataError`` for unusable input, bad options,
    or an ``out_dir`` made (or being made) from other sources or options.

    Example::

        manifest = preprocess([Path("day_0.gz"), Path("day_1.gz")], Path("data/days01"))
        arrays = open_arrays(Path("data/days01"), manifest)  # from dct.data.criteo_format
    """
    options = checked_options(mode, hash_size, min_count, chunk_rows)
    if not sources:
        raise DataError("no input files given; name one or more Criteo TSV files")
    files = [describe_source(Path(path)) for path in sources]
    out_dir = Path(out_dir)
    _make_output_dir(out_dir)
    try:
        return _preprocess(files, out_dir, options, strict, progress)
    except OSError as error:
        if error.filename is not None and not Path(error.filename).is_relative_to(out_dir):
            raise  # not the output's fault: input errors are reported where files are read
        where = "" if error.filename is None else f": {error.filename}"
        raise DataError(
            f"{out_dir}: cannot write the output ({error.strerror}{where}); make it writable or "
            "free some space, or give another output directory"
        ) from None


def _make_output_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} is a file; give a directory (new or empty) for the output")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocking = next((p for p in out_dir.parents if p.exists() and not p.is_dir()), None)
        why = error.strerror if blocking is None else f"{blocking} is a file"
        raise DataError(
            f"{out_dir}: cannot create the output directory ({why}); "
            "give a directory you can create and write to"
        ) from None


def _preprocess(
    files: list[SourceFile], out_dir: Path, options: dict, strict: bool, progress: bool
) -> Manifest:
    mode, chunk_rows = options["mode"], options["chunk_rows"]
    if (out_dir / MANIFEST).is_file():
        manifest = read_manifest(out_dir)
        require_same(out_dir, manifest.options, manifest.sources, options, files, finished=True)
        remove_run_files(out_dir)  # left when a run stopped just after writing its manifest
        return manifest
    state = start_or_resume(out_dir, options, files)
    if mode == "hash":
        table_sizes = [options["hash_size"]] * NUM_SPARSE
        to_indices = functools.partial(hash_indices, hash_size=options["hash_size"])
    else:
        min_count = options["min_count"]
        vocabulary = _vocabulary(out_dir, files, min_count, chunk_rows, strict, progress)
        table_sizes, to_indices = vocabulary.table_sizes(), vocabulary.indices
    with PartialArrays(out_dir, state.rows) as arrays:
        for chunk in _chunks(files, state.source, state.line, state.offset, chunk_rows, progress):
            parsed = _parse(chunk, strict)
            arrays.append(parsed, to_indices(parsed.categorical))
            state.record(chunk, parsed)
            state.save(out_dir / PROGRESS)
    if state.rows == 0:
        names = ", ".join(f.path for f in files)
        raise DataError(
            f"{names}: no valid rows ({sum(state.bad_lines.values())} malformed line(s)); "
            "give Criteo TSV files: label, I1..I13, C1..C26, tab-separated"
        )
    for name in ARRAYS:
        os.replace(out_dir / (name + PARTIAL), out_dir / name)
    manifest = Manifest(state.rows, table_sizes, options, files, dict(state.bad_lines))
    write_atomic(out_dir / MANIFEST, manifest.to_json().encode())
    remove_run_files(out_dir)
    _log_summary(out_dir, state)
    return manifest


def _chunks(
    files: list[SourceFile], source: int, line: int, offset: int, chunk_rows: int, progress: bool
) -> Iterator[Chunk]:
    """The chunks of ``files`` from line ``line`` (at byte ``offset``) of ``files[source]`` on."""
    total = sum(f.size for f in files)
    done = sum(f.size for f in files[:source])
    with tqdm(total=total, unit="B", unit_scale=True, disable=not progress) as bar:
        for index in range(source, len(files)):
            path = files[index].path
            try:
                raw = open(path, "rb")
            except OSError as error:
                raise DataError(
                    f"{path} can no longer be read ({error.strerror}): it was there when the run "
                    "started; put it back and run the same command again to resume"
                ) from None
            with raw:
                packed = raw.read(2) == b"\x1f\x8b"
                raw.seek(0)
                stream = gzip.GzipFile(fileobj=raw) if packed else raw
                try:
                    # Offsets count the mark's bytes: a resumed run seeks past it as well.
                    if offset == 0 and stream.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
                        offset = len(codecs.BOM_UTF8)
                    stream.seek(offset)
                    while lines := list(itertools.islice(stream, chunk_rows)):
                        offset += sum(map(len, lines))
                        bar.update(done + raw.tell() - bar.n)
                        yield Chunk(index, path, line, lines, offset, not stream.peek(1))
                        line += len(lines)
                except (OSError, EOFError, zlib.error) as error:
                    what = "a corrupt or truncated gzip file" if packed else "unreadable"
                    raise DataError(f"{path} is {what} ({error}); download it again") from None
            done, line, offset = done + files[index].size, 0, 0


def _parse(chunk: Chunk, strict: bool) -> ParsedLines:
    try:
        parsed = parse_lines(chunk.lines)
    except UnicodeDecodeError as error:
        number = chunk.first_line + chunk.lines.index(error.object) + 1
        raise DataError(
            f"{chunk.path}:{number} is not text (not UTF-8); give Criteo TSV files, plain or gzip"
        ) from None
    if strict and parsed.bad:
        index, kind = parsed.bad[0]
        raise DataError(
            f"{chunk.path}:{chunk.first_line + index + 1}: malformed line ({kind}); "
            "fix or remove it, or run without --strict to skip malformed lines"
        )
    return parsed


def _vocabulary(
    out_dir: Path,
    files: list[SourceFile],
    min_count: int,
    chunk_rows: int,
    strict: bool,
    progress: bool,
) -> Vocabulary:
    """The first pass of ``vocab`` mode, or its result saved by an earlier, interrupted run."""
    path = out_dir / VOCABULARY
    if path.is_file():
        with np.load(path) as saved:
            return Vocabulary(
                [saved[f"values{t}"] for t in range(NUM_SPARSE)],
                [saved[f"numbers{t}"] for t in range(NUM_SPARSE)],
            )
    log.info("counting the values of each column (vocab mode, min_count=%d)", min_count)
    columns = [ValueCounts() for _ in range(NUM_SPARSE)]
    for chunk in _chunks(files, 0, 0, 0, chunk_rows, progress):
        categorical = _parse(chunk, strict).categorical
        for t, column in enumerate(columns):
            column.add(categorical[:, t])
    vocabulary = Vocabulary.from_counts(columns, min_count)
    arrays = {f"values{t}": v for t, v in enumerate(vocabulary.values)}
    arrays |= {f"numbers{t}": n for t, n in enumerate(vocabulary.numbers)}
    write_atomic(path, lambda file: np.savez(file, **arrays))
    return vocabulary


def _log_summary(out_dir: Path, state: PreprocessProgress) -> None:
    log.info("wrote %d rows to %s", state.rows, out_dir)
    bad = {kind: count for kind, count in state.bad_lines.items() if count}
    if bad:
        where = {kind: ", ".join(state.examples[kind]) for kind in bad}
        more = {kind: ", ..." if bad[kind] > EXAMPLES else "" for kind in bad}
        kinds = "; ".join(f"{n} {kind} (at {where[kind]}{more[kind]})" for kind, n in bad.items())
        log.warning("skipped %d malformed line(s): %s", sum(bad.values()), kinds)


_DESCRIPTION = """\
Turn Criteo click logs into the binary dataset that training reads (data=criteo).

Each input line is tab-separated: label, I1..I13 (integers), C1..C26 (8 hex
digits); every field but the label may be empty. Malformed lines are skipped and
counted (see --strict). OUT_DIR gets dense.f32, sparse.i32, labels.u8 and, last,
manifest.json (rows, table sizes, options, sources): a directory without
manifest.json is not finished. Rerunning the same command after a crash or
Ctrl-C resumes where it stopped; rerunning it on a finished OUT_DIR does nothing."""

_EPILOG = """\
examples:
  dct-preprocess-criteo data/kaggle train.txt --mode vocab
  dct-preprocess-criteo data/days01 day_0.gz day_1.gz --hash-size 10000000
  python launch/train.py data=criteo data.path=data/kaggle

exit status: 0 done; 2 input, output or option to fix (one "error:" line); 130 interrupted."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dct-preprocess-criteo",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "out_dir",
        type=Path,
        metavar="OUT_DIR",
        help="output directory, created if missing: new, empty, or holding an unfinished run "
        "of this same command",
    )
    parser.add_argument(
        "sources",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="Criteo TSV file(s), plain or gzip (told by their first bytes, not their name), "
        "read in the order given; rows keep that order",
    )
    parser.add_argument(
        "--mode",
        choices=("hash", "vocab"),
        default="hash",
        help="how a categorical value becomes a table row: 'hash' (one pass, every table "
        "--hash-size rows) or 'vocab' (two passes, a row for each value seen at least "
        "--min-count times; holds every distinct value in memory while counting); "
        "default: %(default)s",
    )
    parser.add_argument(
        "--hash-size",
        type=int,
        default=DEFAULT_HASH_SIZE,
        metavar="ROWS",
        help="hash mode: rows of each of the 26 tables, row 0 being the missing value; "
        "default: %(default)s",
    )
    parser.add_argument(
        "--min-count",
        type=int,
        default=DEFAULT_MIN_COUNT,
        metavar="N",
        help="vocab mode: values seen fewer than N times share row 0 with the missing value; "
        "default: %(default)s",
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        metavar="LINES",
        help="lines read, parsed and written at a time, about 1.7 KB of memory each; a crash "
        "loses at most one chunk of work; default: %(default)s (about 170 MB)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop with an error at the first malformed line (default: skip and count it)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="do not draw the progress bar on stderr (default: draw it)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``dct-preprocess-criteo OUT_DIR FILE [FILE ...]`` (or ``python -m
    dct.data.criteo_preprocess``): the exit status, 2 for input, output or options the user
    must fix (reported as one ``error:`` line, no traceback), 130 when interrupted."""
    args = _parser().parse_args(argv)
    log_levels.quiet_tool(format="%(levelname)s: %(message)s")
    try:
        preprocess(**vars(args))
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
