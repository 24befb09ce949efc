"""Preprocessing TSV files into the on-disk format, against a per-row Python reference of the
format's rules, an uninterrupted run (for resumed ones) and an independent reading of the real
Kaggle sample."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import logging
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dct.data import criteo_preprocess, criteo_preprocess_state
from dct.data.criteo_format import (
    ARRAYS,
    DENSE_FILE,
    LABELS_FILE,
    MANIFEST,
    SPARSE_FILE,
    DataError,
    open_arrays,
    read_manifest,
)
from dct.data.criteo_preprocess import preprocess
from dct.data.criteo_preprocess_state import PROGRESS, VOCABULARY
from tests.unit.test_criteo_lines import reference_kind

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "criteo_kaggle_head10k.tsv"
BAD_LINES = {  # one malformed line of each kind
    "field_count": "1\t2\t3\n",
    "label": "\t".join(["2"] + [""] * 39) + "\n",
    "integer": "\t".join(["0", "1.5"] + [""] * 38) + "\n",
    "hex": "\t".join(["0"] + [""] * 13 + ["nothex!!"] + [""] * 25) + "\n",
}
Row = tuple[int, list[int | None], list[int | None]]


def random_rows(rng: random.Random, count: int) -> list[Row]:
    """Rows whose categorical values repeat (a few per column) but in the last column, whose
    values are nearly all distinct: vocab mode has frequent and rare values to tell apart."""
    sizes = [rng.randint(1, 9) for _ in range(25)] + [10**4]
    pools = [[rng.randrange(2**32) for _ in range(size)] for size in sizes]
    return [
        (
            rng.randint(0, 1),
            [rng.choice([None, rng.randint(-3, 10**6)]) for _ in range(13)],
            [rng.choice([None, *pool]) for pool in pools],
        )
        for _ in range(count)
    ]


def line(row: Row, end: str = "\n") -> str:
    label, ints, cats = row
    ints_text = ["" if x is None else str(x) for x in ints]
    cats_text = ["" if c is None else format(c, "08x" if c % 2 else "08X") for c in cats]
    return "\t".join([str(label), *ints_text, *cats_text]) + end


def reference(rows: list[Row], sparse_of) -> dict[str, np.ndarray]:
    """The arrays the format's docstring asks for, computed row by row."""
    dense = [[math.log1p(max(x, 0)) if x is not None else 0.0 for x in ints] for _, ints, _ in rows]
    return {
        DENSE_FILE: np.array(dense, np.float32).reshape(-1, 13),
        SPARSE_FILE: np.array([sparse_of(cats) for _, _, cats in rows], np.int32).reshape(-1, 26),
        LABELS_FILE: np.array([label for label, _, _ in rows], np.uint8),
    }


def hash_reference(hash_size: int):
    return lambda cats: [0 if c is None else 1 + c % (hash_size - 1) for c in cats]


def vocab_reference(rows: list[Row], min_count: int):
    tables = []
    for t in range(26):
        counts = Counter(cats[t] for _, _, cats in rows if cats[t] is not None)
        frequent = sorted(
            (v for v in counts if counts[v] >= min_count), key=lambda v: (-counts[v], v)
        )
        tables.append({v: i + 1 for i, v in enumerate(frequent)})
    return [len(t) + 1 for t in tables], lambda cats: [
        tables[t].get(c, 0) for t, c in enumerate(cats)
    ]


def assert_arrays(out: Path, expected: dict[str, np.ndarray]) -> None:
    arrays = open_arrays(out, read_manifest(out))
    for name, array in expected.items():
        np.testing.assert_array_equal(arrays[name], array, err_msg=name)


def contents(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture
def sources(tmp_path) -> tuple[list[Path], list[Row]]:
    """Three files with malformed lines of every kind: plain with CRLF endings, gzip under a
    plain name, and plain text under a .gz name (gzip is told by its magic bytes)."""
    rng = random.Random(7)
    rows = random_rows(rng, 60)
    first = "".join(line(r, "\r\n") for r in rows[:20]) + BAD_LINES["field_count"]
    second = BAD_LINES["label"] + "".join(line(r) for r in rows[20:45]) + BAD_LINES["integer"]
    third = "".join(line(r) for r in rows[45:50]) + BAD_LINES["hex"]
    third += "".join(line(r) for r in rows[50:]).rstrip("\n")  # no newline at the very end
    paths = [tmp_path / "day_0.tsv", tmp_path / "day_1.tsv", tmp_path / "day_2.gz"]
    paths[0].write_text(first, newline="")
    paths[1].write_bytes(gzip.compress(second.encode()))
    paths[2].write_text(third)
    return paths, rows


def test_hash_mode_matches_the_reference(sources, tmp_path):
    paths, rows = sources
    out = tmp_path / "out"
    manifest = preprocess(paths, out, hash_size=1000, chunk_rows=7, progress=False)

    assert_arrays(out, reference(rows, hash_reference(1000)))
    assert manifest == read_manifest(out)
    assert manifest.rows == 60 and manifest.table_sizes == [1000] * 26
    assert manifest.options == {"mode": "hash", "hash_size": 1000, "chunk_rows": 7}
    assert manifest.bad_lines == {"field_count": 1, "label": 1, "integer": 1, "hex": 1}
    assert [(s.path, s.size, s.sha256) for s in manifest.sources] == [
        (str(p), p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths
    ]
    assert sorted(os.listdir(out)) == sorted([MANIFEST, *ARRAYS])  # no run files left


def test_vocab_mode_matches_the_reference(sources, tmp_path):
    paths, rows = sources
    table_sizes, sparse_of = vocab_reference(rows, min_count=3)
    assert 1 in table_sizes and max(table_sizes) > 2  # the data exercises rare and frequent

    manifest = preprocess(paths, tmp_path / "out", mode="vocab", min_count=3, chunk_rows=9)

    assert_arrays(tmp_path / "out", reference(rows, sparse_of))
    assert manifest.table_sizes == table_sizes
    assert manifest.options == {"mode": "vocab", "min_count": 3, "chunk_rows": 9}


def test_runs_give_identical_bytes_whatever_the_chunk_size(sources, tmp_path):
    paths, _ = sources
    for out, chunk_rows in (("a", 5), ("b", 5), ("c", 1000)):
        preprocess(paths, tmp_path / out, hash_size=97, chunk_rows=chunk_rows, progress=False)

    assert contents(tmp_path / "a") == contents(tmp_path / "b")
    arrays = {name: data for name, data in contents(tmp_path / "a").items() if name != MANIFEST}
    assert arrays == {n: d for n, d in contents(tmp_path / "c").items() if n != MANIFEST}


def test_malformed_lines_are_summarised_with_their_locations(sources, tmp_path, caplog):
    paths, _ = sources
    with caplog.at_level(logging.INFO, logger=criteo_preprocess.__name__):
        preprocess(paths, tmp_path / "out", chunk_rows=4, progress=False)

    summary = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert summary.startswith("skipped 4 malformed line(s)")
    for kind, where in [
        ("field_count", f"{paths[0]}:21"),
        ("label", f"{paths[1]}:1"),
        ("integer", f"{paths[1]}:27"),
        ("hex", f"{paths[2]}:6"),
    ]:
        assert f"1 {kind} (at {where})" in summary


def test_the_summary_shows_the_first_five_locations_of_a_kind(tmp_path, caplog):
    path = tmp_path / "day.tsv"
    path.write_text(line(random_rows(random.Random(2), 1)[0]) + BAD_LINES["field_count"] * 7)
    with caplog.at_level(logging.WARNING, logger=criteo_preprocess.__name__):
        preprocess([path], tmp_path / "out", chunk_rows=3, progress=False)

    where = ", ".join(f"{path}:{n}" for n in range(2, 7))
    assert (
        caplog.records[-1].getMessage()
        == f"skipped 7 malformed line(s): 7 field_count (at {where}, ...)"
    )


def test_strict_mode_names_the_file_line_and_kind(sources, tmp_path):
    paths, _ = sources
    with pytest.raises(DataError, match=rf"^{paths[0]}:21: malformed line \(field_count\)"):
        preprocess(paths, tmp_path / "out", strict=True, chunk_rows=8, progress=False)
    with pytest.raises(DataError, match=rf"^{paths[1]}:1: malformed line \(label\)"):
        preprocess(paths[1:], tmp_path / "out2", mode="vocab", strict=True, progress=False)


def bad_input(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"{case}.tsv"
    good = line(random_rows(random.Random(1), 1)[0]).encode()
    if case == "missing":
        return path
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "no_valid_rows":
        path.write_text("".join(BAD_LINES.values()))
    elif case == "corrupt_gzip":
        path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(60)))
    elif case == "truncated_gzip":
        path.write_bytes(gzip.compress(good * 200)[:100])
    elif case == "not_text":
        path.write_bytes(good * 3 + b"\x89PNG\r\n\x1a\n\x00\xff\xfe" + good)
    return path


@pytest.mark.parametrize(
    "case, says",
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", r"is empty \(0 bytes\)"),
        ("no_valid_rows", r"no valid rows \(4 malformed line\(s\)\)"),
        ("corrupt_gzip", "is a corrupt or truncated gzip file"),
        ("truncated_gzip", "is a corrupt or truncated gzip file"),
        ("not_text", r":4 is not text \(not UTF-8\)"),
    ],
)
def test_bad_input_is_a_data_error_naming_the_file(tmp_path, case, says):
    path = bad_input(tmp_path, case)
    with pytest.raises(
        DataError, match=f"^{path}{says}" if says[0] == ":" else f"^{path}.? {says}"
    ):
        preprocess([path], tmp_path / "out", chunk_rows=2, progress=False)


def test_bad_options_are_data_errors(sources, tmp_path):
    paths, _ = sources
    for options in ({"hash_size": 1}, {"mode": "vocab", "min_count": 0}, {"chunk_rows": 0}):
        with pytest.raises(DataError, match="give"):
            preprocess(paths, tmp_path / "out", **options)
    with pytest.raises(DataError, match="'bloom' is unknown"):
        preprocess(paths, tmp_path / "out", mode="bloom")


def test_rerun_on_finished_output_is_a_no_op(sources, tmp_path):
    paths, _ = sources
    out = tmp_path / "out"
    first = preprocess(paths, out, hash_size=1000, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    again = preprocess(paths, out, hash_size=1000, progress=False)

    assert again == first
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_other_options_or_sources_are_refused(sources, tmp_path, monkeypatch):
    paths, _ = sources
    finished, unfinished = tmp_path / "finished", tmp_path / "unfinished"
    preprocess(paths, finished, hash_size=1000, progress=False)
    with pytest.raises(DataError, match=rf"^{finished} already holds .*hash_size=1000 .*delete"):
        preprocess(paths, finished, hash_size=999, progress=False)
    with pytest.raises(DataError, match="already holds output made with chunk_rows=100000"):
        preprocess(paths, finished, hash_size=1000, chunk_rows=5, progress=False)
    with open(paths[2], "a") as changed:
        changed.write("\n")
    with pytest.raises(DataError, match="from other input files.*new output directory"):
        preprocess(paths, finished, hash_size=1000, progress=False)

    crash_after(monkeypatch, chunks=2)
    with pytest.raises(RuntimeError):
        preprocess(paths, unfinished, hash_size=1000, chunk_rows=5, progress=False)
    monkeypatch.undo()
    with pytest.raises(DataError, match=rf"^{unfinished} holds an unfinished run .*delete"):
        preprocess(paths, unfinished, mode="vocab", chunk_rows=5, progress=False)


def crash_after(monkeypatch, chunks: int) -> None:
    """Crash, as a kill would, after ``chunks`` chunks are recorded and the next one is written
    to the arrays but not yet recorded: the arrays then hold more rows than the progress file."""
    save = criteo_preprocess_state.PreprocessProgress.save
    saved = []

    def failing(self, path):
        if len(saved) == chunks + 1:  # the first save records the start
            raise RuntimeError("simulated crash")
        save(self, path)
        saved.append(self.rows)

    monkeypatch.setattr(criteo_preprocess_state.PreprocessProgress, "save", failing)


def test_resume_after_a_crash_is_identical_and_does_not_recount(sources, tmp_path, monkeypatch):
    paths, _ = sources
    options = {"mode": "vocab", "min_count": 2, "chunk_rows": 6, "progress": False}
    preprocess(paths, tmp_path / "whole", **options)
    out = tmp_path / "resumed"

    crash_after(monkeypatch, chunks=5)
    with pytest.raises(RuntimeError):
        preprocess(paths, out, **options)
    monkeypatch.undo()
    assert not (out / MANIFEST).exists() and not (out / DENSE_FILE).exists()
    recorded = json.loads((out / PROGRESS).read_text())["rows"]
    assert 0 < recorded < (out / (LABELS_FILE + ".partial")).stat().st_size  # one byte a row
    assert (out / VOCABULARY).is_file()
    monkeypatch.setattr(criteo_preprocess.ValueCounts, "add", lambda *_: pytest.fail("recount"))
    preprocess(paths, out, **options)

    assert contents(out) == contents(tmp_path / "whole")


def fail_writes_of(monkeypatch, name: str, error: BaseException, *modules) -> None:
    """``write_atomic`` in ``modules`` raises ``error`` for a file called ``name``."""
    write = criteo_preprocess_state.write_atomic

    def failing(path, content):
        if path.name == name:
            raise error
        write(path, content)

    for module in modules:
        monkeypatch.setattr(module, "write_atomic", failing)


def test_resume_after_a_crash_before_the_manifest(sources, tmp_path, monkeypatch):
    paths, _ = sources
    preprocess(paths, tmp_path / "whole", progress=False)
    out = tmp_path / "resumed"
    fail_writes_of(monkeypatch, MANIFEST, RuntimeError("simulated crash"), criteo_preprocess)
    with pytest.raises(RuntimeError):
        preprocess(paths, out, progress=False)
    monkeypatch.undo()
    with pytest.raises(DataError, match="not a finished preprocessing output"):
        read_manifest(out)
    preprocess(paths, out, progress=False)

    assert contents(out) == contents(tmp_path / "whole")


def command(out: Path, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dct.data.criteo_preprocess", str(out), *map(str, args)]


def test_resume_after_sigkill_is_byte_identical(tmp_path):
    rng = random.Random(3)
    pool = [line(row) for row in random_rows(rng, 500)]
    plain, packed = tmp_path / "day_0.tsv", tmp_path / "day_1.tsv.gz"
    plain.write_text("".join(rng.choices(pool, k=30_000)))
    packed.write_bytes(gzip.compress("".join(rng.choices(pool, k=30_000)).encode(), 1))
    options = ["--hash-size", "5000", "--chunk-rows", "500", "--no-progress"]
    out = tmp_path / "killed"
    progress = out / PROGRESS

    process = subprocess.Popen(command(out, plain, packed, *options), stderr=subprocess.DEVNULL)
    rows, deadline = 0, time.monotonic() + 60
    while rows <= 35_000 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.002)
        if progress.is_file():
            rows = json.loads(progress.read_text())["rows"]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"exited ({process.returncode}) before the kill"
    assert 35_000 < json.loads(progress.read_text())["rows"] < 60_000  # inside the gzip file
    assert not (out / MANIFEST).exists() and not (out / DENSE_FILE).exists()

    resumed = subprocess.run(command(out, plain, packed, *options), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    preprocess([plain, packed], tmp_path / "whole", hash_size=5000, chunk_rows=500, progress=False)
    assert contents(out) == contents(tmp_path / "whole")


def test_a_missing_file_is_one_error_line_and_exit_code_2(tmp_path):
    missing = tmp_path / "absent.tsv"
    done = subprocess.run(command(tmp_path / "out", missing), capture_output=True, text=True)

    assert done.returncode == 2
    assert done.stderr == f"error: {missing}: no such file; check the path\n"
    assert done.stdout == ""


def test_the_real_kaggle_sample(tmp_path):
    if not SAMPLE.is_file():
        pytest.skip(f"the real Criteo sample {SAMPLE} is not on this machine")
    lines = SAMPLE.read_text().removesuffix("\n").split("\n")
    kinds = Counter(reference_kind(text) for text in lines)
    assert len(lines) == 9_999 and kinds == {None: 9_999}  # all 40 fields and well-formed
    fields = [text.split("\t") for text in lines]
    rows = [
        (
            int(f[0]),
            [int(x) if x else None for x in f[1:14]],
            [int(h, 16) if h else None for h in f[14:]],
        )
        for f in fields
    ]

    manifest = preprocess([SAMPLE], tmp_path / "out", hash_size=5000)  # with a progress bar

    assert manifest.rows == 9_999
    assert manifest.bad_lines == {"field_count": 0, "label": 0, "integer": 0, "hex": 0}
    assert open_arrays(tmp_path / "out", manifest)[LABELS_FILE].tolist() == [
        int(f[0]) for f in fields
    ]
    assert_arrays(tmp_path / "out", reference(rows, hash_reference(5000)))


HELP_SCRIPT = """
import sys
from dct.data.criteo_preprocess import main
try:
    main(["--help"])
except SystemExit as done:
    assert done.code == 0, done.code
print("loaded:", " ".join(sorted(m for m in ("torch", "numpy", "tqdm") if m in sys.modules)))
"""


@pytest.fixture(scope="module")
def help_run() -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT], capture_output=True, text=True, timeout=120
    )


def test_help_describes_every_argument_with_its_default_and_an_example(help_run):
    assert help_run.returncode == 0, help_run.stderr
    assert help_run.stdout.startswith("usage: dct-preprocess-criteo")
    assert "examples:\n  dct-preprocess-criteo data/kaggle train.txt" in help_run.stdout
    assert "data.path=data/kaggle" in help_run.stdout
    for action in criteo_preprocess._parser()._actions:
        text = action.help % {"default": action.default}
        assert len(text.split()) >= 5, f"{action.dest}: {text!r} describes nothing"
        if action.default not in (None, True, False, "==SUPPRESS=="):
            assert f"default: {action.default}" in text, action.dest


def test_help_imports_no_torch(help_run):
    assert help_run.returncode == 0, help_run.stderr
    assert "torch" not in help_run.stdout.splitlines()[-1].split()


@pytest.mark.parametrize("crash_after_chunks", [None, 0, 1])
def test_a_byte_order_mark_keeps_the_first_row(tmp_path, monkeypatch, crash_after_chunks):
    rows = random_rows(random.Random(5), 9)
    bom = b"\xef\xbb\xbf"
    plain, packed = tmp_path / "plain.tsv", tmp_path / "packed.tsv.gz"
    plain.write_bytes(bom + "".join(line(row) for row in rows[:5]).encode())
    packed.write_bytes(gzip.compress(bom + "".join(line(row) for row in rows[5:]).encode()))
    options = {"hash_size": 1000, "chunk_rows": 2, "strict": True, "progress": False}
    out = tmp_path / "out"
    if crash_after_chunks is not None:  # a resumed run seeks past the mark as well
        crash_after(monkeypatch, chunks=crash_after_chunks)
        with pytest.raises(RuntimeError):
            preprocess([plain, packed], out, **options)
        monkeypatch.undo()

    manifest = preprocess([plain, packed], out, **options)

    assert manifest.rows == len(rows) and not any(manifest.bad_lines.values())
    assert_arrays(out, reference(rows, hash_reference(1000)))


def unusable_output(tmp_path: Path, case: str) -> tuple[Path, str]:
    """An output directory that cannot be made or written, and the error's pattern."""
    if case == "parent_is_a_file":
        (tmp_path / "taken").write_text("")
        out = tmp_path / "taken" / "out"
        says = f"{out}: cannot create the output directory ({tmp_path / 'taken'} is a file)"
        return out, re.escape(says)
    if case == "is_a_file":
        (tmp_path / "out").write_text("")
        return tmp_path / "out", re.escape(f"{tmp_path / 'out'} is a file; give a directory")
    (tmp_path / "locked").mkdir(mode=0o555)
    try:
        (tmp_path / "locked" / "probe").touch()
        pytest.skip("this user (root) writes to read-only directories")
    except PermissionError:
        pass
    if case == "parent_read_only":
        out = tmp_path / "locked" / "out"
        return out, re.escape(f"{out}: cannot create the output directory (Permission denied)")
    out = tmp_path / "locked"
    return out, re.escape(f"{out}: cannot write the output (Permission denied: {out}/")


@pytest.mark.parametrize("case", ["parent_is_a_file", "is_a_file", "parent_read_only", "read_only"])
def test_an_unusable_output_directory_is_one_error_line_and_exit_code_2(tmp_path, case):
    source = tmp_path / "day.tsv"
    source.write_text(line(random_rows(random.Random(4), 1)[0]))
    out, says = unusable_output(tmp_path, case)

    done = subprocess.run(command(out, source, "--no-progress"), capture_output=True, text=True)

    assert done.returncode == 2
    assert re.match(f"error: {says}", done.stderr), done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert not (out / MANIFEST).exists()


@pytest.mark.parametrize("failing", [PROGRESS, MANIFEST])
def test_an_output_that_cannot_be_written_is_a_data_error_leaving_no_manifest(
    sources, tmp_path, monkeypatch, failing
):
    """As a read-only directory (for root too) fails at the first file and a full disk at any:
    even the manifest's own write, when the arrays already have their final names."""
    paths, _ = sources
    preprocess(paths, tmp_path / "whole", progress=False)
    out = tmp_path / "out"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    fail_writes_of(monkeypatch, failing, full, criteo_preprocess_state, criteo_preprocess)
    with pytest.raises(DataError, match=rf"^{out}: cannot write the output \(No space left"):
        preprocess(paths, out, progress=False)
    monkeypatch.undo()
    with pytest.raises(DataError, match="not a finished preprocessing output"):
        read_manifest(out)
    preprocess(paths, out, progress=False)  # once there is room, the rerun finishes the run

    assert contents(out) == contents(tmp_path / "whole")


def test_an_input_removed_after_it_was_checked_is_a_data_error(sources, tmp_path, monkeypatch):
    """The files are checked (size, SHA-256) before any is read; one gone by the time it is read
    is one line, and the run resumes once it is back."""
    paths, _ = sources
    describe = criteo_preprocess.describe_source
    kept = paths[1].read_bytes()

    def then_removed(path):
        described = describe(path)
        if Path(path) == paths[1]:
            paths[1].unlink()
        return described

    monkeypatch.setattr(criteo_preprocess, "describe_source", then_removed)
    with pytest.raises(DataError, match=rf"^{paths[1]} can no longer be read \(No such file"):
        preprocess(paths, tmp_path / "out", progress=False)
    monkeypatch.setattr(criteo_preprocess, "describe_source", describe)
    paths[1].write_bytes(kept)
    preprocess(paths, tmp_path / "out", progress=False)
    preprocess(paths, tmp_path / "whole", progress=False)
    assert contents(tmp_path / "out") == contents(tmp_path / "whole")
