"""The resumable state of a Criteo preprocessing run, kept on disk beside its output.

``progress.json`` says, after every chunk, how far the run got and what it was started on (its
options and the size and SHA-256 of every source); the arrays grow under ``.partial`` names;
every small file is written atomically. A rerun checks that it is the same run (same options,
same sources) before it goes on, and cuts the partial arrays back to the recorded row count:
they may hold a chunk more than recorded, never less, since they reach the disk first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dct.data.criteo_format import (
    ARRAYS,
    DENSE_FILE,
    LABELS_FILE,
    SPARSE_FILE,
    DataError,
    SourceFile,
)
from dct.data.criteo_lines import MALFORMED_KINDS, ParsedLines

log = logging.getLogger(__name__)

PROGRESS, VOCABULARY, PARTIAL = "progress.json", "vocabulary.npz", ".partial"
EXAMPLES = 5  # malformed-line locations kept per kind for the summary


@dataclass(frozen=True)
class Chunk:
    """Up to ``chunk_rows`` lines of source ``source``, from its 0-based line ``first_line``."""

    source: int
    path: str
    first_line: int
    lines: list[bytes]
    end_offset: int  # uncompressed bytes of the file up to the end of this chunk
    last: bool  # the file's last chunk


@dataclass
class PreprocessProgress:
    """How far a run got, saved after every chunk: where to go on, and what it was started on."""

    options: dict
    sources: list[SourceFile]
    source: int = 0
    line: int = 0
    offset: int = 0
    rows: int = 0
    bad_lines: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MALFORMED_KINDS, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in MALFORMED_KINDS})

    def record(self, chunk: Chunk, parsed: ParsedLines) -> None:
        for index, kind in parsed.bad:
            self.bad_lines[kind] += 1
            if len(self.examples[kind]) < EXAMPLES:
                self.examples[kind].append(f"{chunk.path}:{chunk.first_line + index + 1}")
        self.rows += len(parsed.labels)
        # After a file's last chunk, point at the next file: resuming then need not re-read
        # (for gzip, decompress) the whole finished file just to find its end.
        if chunk.last:
            self.source, self.line, self.offset = chunk.source + 1, 0, 0
        else:
            self.source, self.offset = chunk.source, chunk.end_offset
            self.line = chunk.first_line + len(chunk.lines)

    def save(self, path: Path) -> None:
        write_atomic(path, json.dumps(asdict(self)).encode())


def checked_options(mode: str, hash_size: int, min_count: int, chunk_rows: int) -> dict:
    if chunk_rows < 1:
        raise DataError(f"chunk_rows={chunk_rows}: give at least 1")
    if mode == "hash":
        if not 2 <= hash_size <= 2**31:
            raise DataError(f"hash_size={hash_size}: give 2 to 2**31 (index 0 is 'missing')")
        return {"mode": mode, "hash_size": hash_size, "chunk_rows": chunk_rows}
    if mode == "vocab":
        if min_count < 1:
            raise DataError(f"min_count={min_count}: give at least 1")
        return {"mode": mode, "min_count": min_count, "chunk_rows": chunk_rows}
    raise DataError(f"mode={mode!r} is unknown; use 'hash' or 'vocab'")


def describe_source(path: Path) -> SourceFile:
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise DataError(f"{path} is a directory; name the Criteo TSV files in it instead")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path} is empty (0 bytes); download it again or leave it out")
    try:
        with open(path, "rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise DataError(f"{path} cannot be read ({error.strerror}); check permissions") from None
    return SourceFile(str(path), size, digest)


def require_same(
    out_dir: Path,
    old_options: dict,
    old_files: list[SourceFile],
    options: dict,
    files: list[SourceFile],
    *,
    finished: bool,
) -> None:
    if old_options != options:
        keys = sorted(old_options.keys() | options.keys())
        changed = [k for k in keys if old_options.get(k) != options.get(k)]
        old, new = (
            ", ".join(f"{k}={o[k]}" for k in changed if k in o) for o in (old_options, options)
        )
        difference = f"with {old} (now {new})"
    elif [(f.size, f.sha256) for f in old_files] != [(f.size, f.sha256) for f in files]:
        old_names = ", ".join(f.path for f in old_files)
        difference = f"from other input files ({old_names}; sizes or SHA-256 differ)"
    else:
        return
    if finished:
        raise DataError(
            f"{out_dir} already holds output made {difference}; "
            f"use a new output directory, or delete {out_dir} to redo it"
        )
    raise DataError(
        f"{out_dir} holds an unfinished run started {difference}; rerun that command to "
        f"finish it, or use a new output directory, or delete {out_dir} to start again"
    )


def start_or_resume(out_dir: Path, options: dict, files: list[SourceFile]) -> PreprocessProgress:
    path = out_dir / PROGRESS
    if not path.is_file():
        remove_run_files(out_dir)  # a vocabulary without a progress file belongs to no run
        state = PreprocessProgress(options, files)
        state.save(path)
        return state
    try:
        raw = json.loads(path.read_text())
        state = PreprocessProgress(**{**raw, "sources": [SourceFile(**s) for s in raw["sources"]]})
    except (ValueError, TypeError, KeyError) as error:
        raise DataError(f"{path} is not a progress file ({error}); delete {out_dir}") from None
    require_same(out_dir, state.options, state.sources, options, files, finished=False)
    log.info("resuming %s after row %d", out_dir, state.rows)
    return state


class PartialArrays:
    """The three arrays under their ``.partial`` names, cut to ``rows`` rows, appended to."""

    def __init__(self, out_dir: Path, rows: int) -> None:
        self.files: dict[str, BinaryIO] = {}
        for name, (dtype, width) in ARRAYS.items():
            partial, final = out_dir / (name + PARTIAL), out_dir / name
            if rows and not partial.exists() and final.exists():
                os.replace(final, partial)  # the last run stopped between its final renames
            size = rows * width * dtype.itemsize
            if rows and (not partial.exists() or partial.stat().st_size < size):
                raise DataError(
                    f"{partial} is shorter than {out_dir / PROGRESS} says ({rows} rows); "
                    f"delete {out_dir} and start again"
                )
            self.files[name] = open(partial, "ab")
            self.files[name].truncate(size)

    def append(self, parsed: ParsedLines, sparse: np.ndarray) -> None:
        arrays = {DENSE_FILE: parsed.dense, SPARSE_FILE: sparse, LABELS_FILE: parsed.labels}
        for name, array in arrays.items():
            self.files[name].write(np.ascontiguousarray(array, dtype=ARRAYS[name][0]).tobytes())
        # On disk before the progress file says so: a resumed run may find more rows than
        # recorded (it cuts them off), never fewer.
        for file in self.files.values():
            file.flush()
            os.fsync(file.fileno())

    def __enter__(self) -> PartialArrays:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for file in self.files.values():
            file.close()


def write_atomic(path: Path, content: bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``path`` so that it is, at every instant, either absent/old or complete."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        if isinstance(content, bytes):
            file.write(content)
        else:
            content(file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def remove_run_files(out_dir: Path) -> None:
    for name in (VOCABULARY, PROGRESS):
        (out_dir / name).unlink(missing_ok=True)
