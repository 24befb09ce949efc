"""Pure per-chunk work on Criteo click logs: lines into arrays, categorical values into indices.

No I/O here (``criteo_preprocess`` reads and writes), so every rule is testable on its own.

A line holds 40 tab-separated fields, ``label, I1..I13, C1..C26``: the label ``0`` or ``1``,
integers (possibly negative) or nothing for I, exactly 8 hex digits (either case) or nothing for
C. A trailing ``"\\n"`` or ``"\\r\\n"`` ends the line and is not part of its last field. Any other
line is malformed and skipped whole; its kind is the first rule it breaks, in the order of
``MALFORMED_KINDS``.

Categorical values become table indices as ``dct.data.criteo_format`` says: ``hash_indices``
(``hash`` mode) or a ``Vocabulary`` built from ``ValueCounts`` (``vocab`` mode).

Valid lines are recognised by one regular expression; their fields are then converted for the
whole chunk at once by array operations on its bytes, not by a Python loop over 40 fields a line
(which would make parsing, not I/O, the cost of preprocessing).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dct.data.criteo_format import NUM_DENSE, NUM_SPARSE

MALFORMED_KINDS = ("field_count", "label", "integer", "hex")
MISSING = -1
"""The raw categorical value of an empty C field (present values are ``0 <= v < 2**32``)."""

_FIELDS = 1 + NUM_DENSE + NUM_SPARSE
_INTEGER = "-?[0-9]+"
_HEX = "[0-9a-fA-F]{8}"
_VALID = re.compile(  # on bytes: a valid line is ASCII, and only a malformed one is decoded
    rf"[01](?:\t(?:{_INTEGER})?){{{NUM_DENSE}}}(?:\t(?:{_HEX})?){{{NUM_SPARSE}}}(?:\r?\n)?".encode()
)
_INTEGER_FIELD = re.compile(f"(?:{_INTEGER})?")

_INT64_DIGITS = 18  # any 18-digit number fits in int64
_DIGIT_VALUES = np.zeros(256, dtype=np.int64)  # byte -> value of that hex digit
_DIGIT_VALUES[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_DIGIT_VALUES[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


@dataclass(frozen=True)
class ParsedLines:
    """The valid lines of a chunk, in order, and where the malformed ones were.

    ``labels`` uint8 ``[n]``; ``dense`` float32 ``[n, 13]``, ``log(1 + max(x, 0))`` with an
    empty field 0; ``categorical`` int64 ``[n, 26]``, ``int(h, 16)`` or ``MISSING``; ``bad``
    the ``(index in the chunk, kind)`` of each malformed line.
    """

    labels: np.ndarray
    dense: np.ndarray
    categorical: np.ndarray
    bad: list[tuple[int, str]]


def parse_lines(lines: Sequence[str | bytes]) -> ParsedLines:
    """Parse a chunk of lines (``bytes`` in UTF-8, as read from a file, or ``str``).

    Raises ``UnicodeDecodeError`` for a line of bytes that is not UTF-8 text (the caller knows
    which file it came from).

    Example::

        parsed = parse_lines(["1\\t5" + "\\t" * 12 + "\\t68fd1e64" * 26 + "\\n"])
        assert parsed.labels.tolist() == [1] and parsed.categorical[0, 0] == 0x68FD1E64
    """
    valid, bad = [], []
    for index, line in enumerate(lines):
        data = line.encode("utf-8") if isinstance(line, str) else line
        if _VALID.fullmatch(data):
            valid.append(data.rstrip(b"\r\n"))  # exact: a valid line's last field is hex or empty
        else:
            bad.append((index, _kind(_without_newline(data.decode("utf-8")))))
    if not valid:
        empty = np.empty((0, NUM_DENSE), dtype=np.float32)
        return ParsedLines(np.empty(0, np.uint8), empty, np.empty((0, NUM_SPARSE), np.int64), bad)
    # Joined by tabs, every field of the chunk lies between two tabs (or an end): with their
    # positions, all fields are located, then converted, by array operations on the bytes.
    rows, text = len(valid), np.frombuffer(b"\t".join(valid), dtype=np.uint8)
    del valid  # a copy of the text: freed before the largest arrays are made
    bounds = np.concatenate([[-1], np.flatnonzero(text == ord("\t")), [len(text)]])
    before = bounds[:-1].reshape(rows, _FIELDS)  # views: field j of row i is
    after = bounds[1:].reshape(rows, _FIELDS)  # text[before[i, j] + 1 : after[i, j]]
    labels = text[before[:, 0] + 1] - ord("0")
    dense = _integers(text, before[:, 1 : 1 + NUM_DENSE], after[:, 1 : 1 + NUM_DENSE])
    categorical = _hex(text, before[:, 1 + NUM_DENSE :], after[:, 1 + NUM_DENSE :])
    return ParsedLines(labels, dense, categorical, bad)


def _kind(text: str) -> str:
    """The first rule a line (without its newline) breaks, given that it breaks one."""
    fields = text.split("\t")
    if len(fields) != _FIELDS:
        return "field_count"
    if fields[0] not in ("0", "1"):
        return "label"
    if not all(_INTEGER_FIELD.fullmatch(f) for f in fields[1 : 1 + NUM_DENSE]):
        return "integer"
    return "hex"


def _without_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _at(text: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``text[positions]``, where positions past the end (of empty last fields) read its end."""
    return text[np.minimum(positions, len(text) - 1)]


def _integers(text: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``log(1 + max(x, 0))`` of integer fields (``-?[0-9]*``), float32, read digit by digit."""
    starts = before + 1
    negative = (after > starts) & (_at(text, starts) == ord("-"))
    starts += negative
    digits = after - starts
    value = np.zeros(starts.shape, dtype=np.int64)
    for k in range(min(digits.max(), _INT64_DIGITS)):
        digit = _at(text, starts + k) - ord("0")
        value = np.where(k < digits, value * 10 + digit, value)
    # Negative values (also "-0") are 0: max(x, 0), and +0.0 so that equal inputs give equal bytes.
    result = np.where(negative, 0, value).astype(np.float64)
    for row, column in zip(*np.nonzero(~negative & (digits > _INT64_DIGITS))):
        field = text[starts[row, column] : after[row, column]]  # past int64: rare, left to Python
        result[row, column] = float(field.tobytes())
    return np.log1p(result).astype(np.float32)


def _hex(text: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``int(h, 16)`` of hex fields (8 digits or empty), int64, ``MISSING`` for empty ones."""
    starts = before + 1
    value = np.zeros(starts.shape, dtype=np.int64)
    for k in range(8):
        value <<= 4
        value |= _DIGIT_VALUES[_at(text, starts + k)]
    return np.where(after - starts == 8, value, MISSING)


def hash_indices(categorical: np.ndarray, hash_size: int) -> np.ndarray:
    """``hash`` mode: 0 for a missing value, else ``1 + value % (hash_size - 1)``; int32."""
    return np.where(categorical == MISSING, 0, 1 + categorical % (hash_size - 1)).astype(np.int32)


class ValueCounts:
    """One column's distinct values (ascending) and how often each was seen.

    A chunk's counts wait in ``pending`` until they outnumber the merged ones, so that counting
    n values costs O(n log n) in all, not a full merge per chunk; memory is at most about twice
    the distinct values (16 bytes each) plus one chunk.
    """

    def __init__(self) -> None:
        self.values, self.counts = np.empty(0, np.int64), np.empty(0, np.int64)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, column: np.ndarray) -> None:
        self.pending.append(np.unique(column[column != MISSING], return_counts=True))
        if sum(len(values) for values, _ in self.pending) > len(self.values):
            self.merge()

    def merge(self) -> None:
        values = np.concatenate([self.values, *(values for values, _ in self.pending)])
        counts = np.concatenate([self.counts, *(counts for _, counts in self.pending)])
        self.pending = []
        order = np.argsort(values, kind="stable")
        values, counts = values[order], counts[order]
        starts = np.flatnonzero(np.diff(values, prepend=-1))
        self.values = values[starts]
        self.counts = np.add.reduceat(counts, starts) if len(starts) else counts


@dataclass(frozen=True)
class Vocabulary:
    """``vocab`` mode: per column, the frequent values (ascending) and the index of each.

    Values seen at least ``min_count`` times get 1, 2, ... by descending count, ties by
    ascending value; index 0 is a missing or rare value.

    Example::

        counts = [ValueCounts() for _ in range(NUM_SPARSE)]
        for t, column in enumerate(counts):
            column.add(chunk.categorical[:, t])
        vocabulary = Vocabulary.from_counts(counts, min_count=4)
        sparse = vocabulary.indices(chunk.categorical)
    """

    values: list[np.ndarray]
    numbers: list[np.ndarray]

    @staticmethod
    def from_counts(columns: list[ValueCounts], min_count: int) -> Vocabulary:
        values, numbers = [], []
        for column in columns:
            column.merge()
            frequent = column.counts >= min_count
            kept, counts = column.values[frequent], column.counts[frequent]
            number = np.empty(len(kept), np.int32)
            number[np.lexsort((kept, -counts))] = np.arange(1, len(kept) + 1)
            values.append(kept)
            numbers.append(number)
        return Vocabulary(values, numbers)

    def table_sizes(self) -> list[int]:
        return [1 + len(values) for values in self.values]

    def indices(self, categorical: np.ndarray) -> np.ndarray:
        """The int32 table indices of raw values ``[n, 26]`` (``MISSING`` for an empty field)."""
        out = np.zeros(categorical.shape, np.int32)
        for t, (values, numbers) in enumerate(zip(self.values, self.numbers)):
            if len(values):
                at = np.minimum(np.searchsorted(values, categorical[:, t]), len(values) - 1)
                out[:, t] = np.where(values[at] == categorical[:, t], numbers[at], 0)
        return out
