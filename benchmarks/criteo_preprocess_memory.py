"""Peak memory and speed of Criteo preprocessing, for files of growing size.

    python benchmarks/criteo_preprocess_memory.py --rows 1000000 3000000

Generates a synthetic Criteo TSV file per size (with numpy, a block at a time, so generating
stays fast and small too), preprocesses each in a fresh child process, and prints per size the
child's peak RSS (``ru_maxrss``) before and after preprocessing, and rows per second. In
``hash`` mode the peak should not grow with the file: the preprocessing holds one chunk at a
time. (``vocab`` mode holds every distinct value while counting; random ids are nearly all
distinct, so there memory does grow, as documented.) A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BLOCK_ROWS = 100_000
INT_DIGITS = 6
CHILD = """
import resource, sys, time
from pathlib import Path
from dct.data.criteo_preprocess import preprocess

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
manifest = preprocess([Path(sys.argv[1])], Path(sys.argv[2]), mode=sys.argv[3], progress=False)
seconds = time.perf_counter() - start
print(manifest.rows, seconds, before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def tsv_block(rng: np.random.Generator, rows: int) -> bytes:
    """``rows`` Criteo lines, about 1 in 5 fields empty, built as fixed-width byte templates
    (label, 13 x (tab, 6 digits), 26 x (tab, 8 hex digits), newline) from which a mask drops
    the leading zeros of integers and the characters of empty fields."""
    ints = rng.integers(0, 10**INT_DIGITS, size=(rows, 13)) // rng.integers(1, 10**5, (rows, 13))
    # Heavy-tailed ids, as in click logs: a few values are very common, most are rare.
    ids = np.minimum(rng.random((rows, 26)) ** -3, 2**32 - 1).astype(np.int64)
    powers = 10 ** np.arange(INT_DIGITS - 1, -1, -1)
    digits = (ints[:, :, None] // powers) % 10 + ord("0")
    hex_text = np.frombuffer(ids.astype(">u4").tobytes().hex().encode(), np.uint8)

    int_part = np.full((rows, 13, 1 + INT_DIGITS), ord("\t"), np.uint8)
    int_part[:, :, 1:] = digits
    int_keep = np.ones(int_part.shape, bool)
    int_keep[:, :, 1:] = (ints[:, :, None] >= powers) | (powers == 1)  # no leading zeros
    int_keep[:, :, 1:] &= rng.random((rows, 13, 1)) > 0.2
    hex_part = np.full((rows, 26, 9), ord("\t"), np.uint8)
    hex_part[:, :, 1:] = hex_text.reshape(rows, 26, 8)
    hex_keep = np.ones(hex_part.shape, bool)
    hex_keep[:, :, 1:] = rng.random((rows, 26, 1)) > 0.2

    labels = (rng.random((rows, 1)) < 0.25).astype(np.uint8) + ord("0")
    newlines = np.full((rows, 1), ord("\n"), np.uint8)
    parts = [labels, int_part.reshape(rows, -1), hex_part.reshape(rows, -1), newlines]
    template = np.concatenate(parts, axis=1)
    always = np.ones((rows, 1), bool)
    keep = [always, int_keep.reshape(rows, -1), hex_keep.reshape(rows, -1), always]
    return template[np.concatenate(keep, axis=1)].tobytes()


def write_tsv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "wb") as file:
        for start in range(0, rows, BLOCK_ROWS):
            file.write(tsv_block(rng, min(BLOCK_ROWS, rows - start)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--mode", choices=("hash", "vocab"), default="hash")
    args = parser.parse_args(argv)
    print(f"{'rows':>10} {'file MB':>8} {'RSS before':>11} {'peak RSS':>9} {'rows/s':>8}")
    with tempfile.TemporaryDirectory() as scratch:
        for rows in args.rows:
            path = Path(scratch) / f"criteo_{rows}.tsv"
            write_tsv(path, rows)
            out = Path(scratch) / f"out_{rows}"
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), str(out), args.mode],
                capture_output=True,
                text=True,
                check=True,
            )
            written, seconds, before, peak = done.stdout.split()
            assert int(written) == rows, done.stdout
            print(
                f"{rows:>10} {path.stat().st_size / 1e6:>8.0f} {int(before) / 1024:>8.0f} MB "
                f"{int(peak) / 1024:>6.0f} MB {rows / float(seconds):>8.0f}"
            )
            path.unlink()


if __name__ == "__main__":
    main()
