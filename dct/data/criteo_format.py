"""The preprocessed Criteo format: three flat little-endian arrays and a manifest vouching for them.

A directory holds, for ``rows`` samples in input order (malformed lines skipped):

- ``dense.f32``  — float32 ``[rows, 13]``: ``log(1 + max(x, 0))`` of I1..I13, a missing value 0;
- ``sparse.i32`` — int32 ``[rows, 26]``: C1..C26 as table indices, ``0 <= index < table_sizes[t]``;
- ``labels.u8``  — uint8 ``[rows]``: the click label, 0 or 1;
- ``manifest.json`` — written last, atomically: rows, table sizes, the options that produced the
  arrays, and each source file's size and SHA-256. A directory without it is not finished.

Categorical ids: index 0 is the missing value (and, with a vocabulary, every value seen fewer
than ``min_count`` times); ``hash`` mode maps a present value ``h`` (8 hex digits) to
``1 + int(h, 16) % (hash_size - 1)``, so every table has ``hash_size`` rows; ``vocab`` mode
numbers the frequent values of each column from 1 by descending count, ties by value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
NUM_DENSE = 13
NUM_SPARSE = 26
MANIFEST = "manifest.json"
DENSE_FILE, SPARSE_FILE, LABELS_FILE = "dense.f32", "sparse.i32", "labels.u8"
ARRAYS = {
    DENSE_FILE: (np.dtype("<f4"), NUM_DENSE),
    SPARSE_FILE: (np.dtype("<i4"), NUM_SPARSE),
    LABELS_FILE: (np.dtype("u1"), 1),
}


class DataError(ValueError):
    """Input the user can fix (a missing or unreadable file, a bad line in strict mode, an output
    directory that cannot be written, a manifest that does not match its files, an id outside
    its table); the message names the file and what to do."""


@dataclass(frozen=True)
class SourceFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a finished directory holds; ``options`` records how it was made (mode, sizes)."""

    rows: int
    table_sizes: list[int]
    options: dict
    sources: list[SourceFile]
    bad_lines: dict[str, int] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Manifest:
        raw = json.loads(text)
        raw["sources"] = [SourceFile(**s) for s in raw["sources"]]
        return Manifest(**raw)


def manifest_text(directory: Path, name: str, output: str, tool: str) -> tuple[Path, str]:
    """The path and text of the manifest ``name`` of a finished ``output`` directory (written last
    by ``tool``); ``DataError`` naming what to run for a missing or unfinished directory."""
    path = directory / name
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory; run {tool} into it first")
    if not path.is_file():
        raise DataError(
            f"{path} is missing: {directory} is not a finished {output} output; run (or resume) "
            f"{tool} into it"
        )
    return path, path.read_text()


def read_manifest(directory: Path) -> Manifest:
    """The manifest of a finished directory, checked against the arrays beside it.

    Raises ``DataError`` naming the file when the directory is missing, unfinished, from another
    format version, or when an array's size does not match the manifest's row count.
    """
    directory = Path(directory)
    path, text = manifest_text(directory, MANIFEST, "preprocessing", "dct-preprocess-criteo")
    try:
        manifest = Manifest.from_json(text)
    except (ValueError, TypeError, KeyError) as error:
        raise DataError(f"{path} is not a valid manifest ({error}); preprocess again") from None
    if manifest.format_version != FORMAT_VERSION:
        raise DataError(
            f"{path} has format version {manifest.format_version}, this dct reads "
            f"{FORMAT_VERSION}; preprocess again"
        )
    for name, (dtype, width) in ARRAYS.items():
        array = directory / name
        expected = manifest.rows * width * dtype.itemsize
        actual = array.stat().st_size if array.is_file() else None
        if actual != expected:
            found = "missing" if actual is None else f"{actual} bytes"
            raise DataError(
                f"{array} is {found}, but {path} says {manifest.rows} rows ({expected} bytes); "
                "the files do not belong together: preprocess again"
            )
    return manifest


def open_arrays(directory: Path, manifest: Manifest) -> dict[str, np.memmap]:
    """The three arrays, memory-mapped read-only, shaped ``[rows, width]`` (labels ``[rows]``)."""
    arrays = {}
    for name, (dtype, width) in ARRAYS.items():
        shape = (manifest.rows,) if width == 1 else (manifest.rows, width)
        arrays[name] = np.memmap(Path(directory) / name, dtype=dtype, mode="r", shape=shape)
    return arrays
