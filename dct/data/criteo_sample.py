"""A Criteo-format TSV sample drawn from the synthetic teacher: ``dct-make-criteo-sample``.

It lets the Criteo path (``dct-preprocess-criteo``, then ``data=criteo``) be tried, and tested,
without downloading Criteo. Each line is ``label, I1..I13, C1..C26``, tab-separated, as in
Criteo Kaggle's ``train.txt``:

- the label is the synthetic teacher's Bernoulli draw (``dct.data.synthetic``), so the features
  carry the signal a model can learn, up to the teacher's Bayes AUC;
- ``I`` fields are the generator's integer counts (the model sees ``log(1 + count)`` either way);
- ``C`` fields are 8 lower-case hex digits, an id of the default synthetic tables mapped by a
  bijection of 32-bit words (a different one per column), so a value names one id;
- some fields are empty, as in Criteo: each column has its own missing share, drawn by the seed.

Row ``i`` depends only on the seed and ``i`` (fixed chunks, each from its own generator), so a
shorter sample is the first rows of a longer one. A missing field drops its information, so a
model on the file stays below the synthetic data's Bayes AUC.

Example::

    dct-make-criteo-sample data/criteo_sample.tsv --rows 100000
    dct-preprocess-criteo data/criteo_sample data/criteo_sample.tsv --mode vocab
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from dct.config import SyntheticDataConfig

CHUNK_ROWS = 4096
NUM_DENSE = 13
NUM_SPARSE = 26
# Ranges each column's share of empty fields is drawn from; Criteo's columns go from none to
# most of a column missing, the integer columns more often than the categorical ones.
DENSE_MISSING_SHARE = (0.0, 0.5)
SPARSE_MISSING_SHARE = (0.0, 0.25)
# An odd multiplier permutes the 32-bit words; a per-column XOR mask then tells columns apart.
HEX_MULTIPLIER = 0x9E3779B1
_MISSING_STREAM = 17


def _generator(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


class CriteoSample:
    """Rows of Criteo TSV drawn from ``SyntheticClicks`` with ``seed``, a pure function of
    (seed, row index)."""

    def __init__(self, seed: int) -> None:
        # Imported here so that ``--help`` and a bad argument answer without loading torch.
        from dct.data.synthetic import SyntheticClicks

        cfg = SyntheticDataConfig()  # its defaults have Criteo's 13 integer and 26 id columns
        assert cfg.num_dense == NUM_DENSE and len(cfg.cardinalities) == NUM_SPARSE
        self._clicks = SyntheticClicks(cfg, seed)
        self._seed = seed
        rng = _generator(seed, _MISSING_STREAM)
        self._missing_share = np.concatenate(
            [
                rng.uniform(*DENSE_MISSING_SHARE, NUM_DENSE),
                rng.uniform(*SPARSE_MISSING_SHARE, NUM_SPARSE),
            ]
        )
        self._masks = rng.integers(0, 2**32, NUM_SPARSE, dtype=np.uint64)

    def lines(self, chunk: int) -> list[str]:
        """Rows ``chunk * CHUNK_ROWS`` up to the next chunk, each a line ending in a newline."""
        batch = self._clicks.samples("train", chunk * CHUNK_ROWS, CHUNK_ROWS)
        counts = np.rint(np.expm1(batch.dense.double().numpy())).astype(np.int64)
        ids = np.stack([values.numpy() for values in batch.sparse.values], axis=1)
        words = (ids.astype(np.uint64) * HEX_MULTIPLIER % 2**32) ^ self._masks
        labels = batch.labels.numpy().astype(np.int64)
        rng = _generator(self._seed, _MISSING_STREAM, chunk)
        missing = rng.random((CHUNK_ROWS, NUM_DENSE + NUM_SPARSE)) < self._missing_share
        lines = []
        for row in range(CHUNK_ROWS):
            dense = [
                "" if gone else str(x) for x, gone in zip(counts[row], missing[row, :NUM_DENSE])
            ]
            cats = [
                "" if gone else format(int(w), "08x")
                for w, gone in zip(words[row], missing[row, NUM_DENSE:])
            ]
            lines.append("\t".join([str(labels[row]), *dense, *cats]) + "\n")
        return lines

    def write(self, out: TextIO, rows: int) -> None:
        """The first ``rows`` rows, to ``out``."""
        for chunk in range(-(-rows // CHUNK_ROWS)):
            out.writelines(self.lines(chunk)[: rows - chunk * CHUNK_ROWS])


def make_sample(path: Path, rows: int, seed: int = 0) -> None:
    """Writes the first ``rows`` rows of the sample drawn with ``seed`` to ``path`` (its missing
    folders created), through a temporary file renamed into place: an interrupted run leaves no
    partial sample. Raises ``OSError`` when ``path`` cannot be written."""
    sample = CriteoSample(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "w", encoding="ascii", newline="\n") as out:
            sample.write(out, rows)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of rows")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dct-make-criteo-sample",
        description="Write a Criteo-format TSV sample (label, I1..I13, C1..C26) drawn from the "
        "synthetic teacher, whose labels a model can learn: a stand-in for Criteo to try "
        "dct-preprocess-criteo and data=criteo on.",
        epilog="example:\n  dct-make-criteo-sample data/criteo_sample.tsv\n"
        "  dct-preprocess-criteo data/criteo_sample data/criteo_sample.tsv --mode vocab\n\n"
        'exit status: 0 done; 2 an output that cannot be written (one "error:" line).',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="the TSV file to write")
    parser.add_argument(
        "--rows", type=_positive, default=100_000, help="number of rows; default: %(default)s"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the synthetic world (teacher, rows, missing fields); default: %(default)s",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``dct-make-criteo-sample OUT [--rows N] [--seed S]`` (or ``python -m
    dct.data.criteo_sample``): the exit status, 2 for an output that cannot be written."""
    args = _parser().parse_args(argv)
    if args.seed < 0:
        print(f"error: --seed {args.seed} must be >= 0", file=sys.stderr)
        return 2
    try:
        make_sample(args.out, args.rows, args.seed)
    except OSError as error:
        print(
            f"error: {args.out}: cannot write the sample ({error.strerror}); give a path "
            "in a writable directory",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
