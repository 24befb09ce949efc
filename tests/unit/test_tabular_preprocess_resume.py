"""dct-preprocess stopped part-way and run again: interrupted in the statistics pass, between a
batch's train and eval writes, before or after a batch's record (a file's last one included),
before the manifest, once or twice, the finished output equals an uninterrupted run's byte for
byte; a rerun on another schema, other files or another --batch-rows is refused with one line
naming the difference."""

from __future__ import annotations

from pathlib import Path

import pytest

from dct.data import tabular_preprocess, tabular_preprocess_state
from dct.data.criteo_format import DataError
from dct.data.tabular_encode import Statistics
from dct.data.tabular_preprocess import main, preprocess
from tests.unit.test_tabular_preprocess import ROWS, SCHEMA, write_csv, write_parquet

BATCH_ROWS = 3  # 8 + 8 rows: 3 batches a file, the last short


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, list[Path]]:
    schema = tmp_path / "schema.yaml"
    schema.write_text(SCHEMA + "group: city\n")  # the group file resumes with the others
    reversed_rows = {column: values[::-1] for column, values in ROWS.items()}
    first = write_parquet(tmp_path / "a.parquet", ROWS)
    return schema, [first, write_csv(tmp_path / "b.csv", reversed_rows)]


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def interrupt_after(monkeypatch, owner: object, name: str, calls: int) -> None:
    """``owner.name`` raises ``KeyboardInterrupt`` when called for the ``calls + 1``-th time."""
    original, count = getattr(owner, name), [0]

    def stopping(*args, **kwargs):
        if count[0] == calls:
            raise KeyboardInterrupt
        count[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, stopping)


WHERE = {
    "statistics": (Statistics, "observe"),
    # two writes a batch (train, then eval): odd counts stop between them, before the record
    "write": (tabular_preprocess_state.SplitWriter, "write"),
    # the first save is the start's, the second the statistics'; then one a batch
    "record": (tabular_preprocess_state.TabularProgress, "save"),
    "manifest": (tabular_preprocess, "write_manifest"),
}


@pytest.mark.parametrize(
    "stops",
    [
        [("statistics", 0)],
        [("statistics", 4)],
        [("write", 0)],
        [("write", 3)],
        [("write", 6)],
        [("record", 1)],  # vocabularies written, statistics not recorded: counted again
        [("record", 4)],  # file a's last batch written, not recorded
        [("record", 5)],  # file a's last batch recorded: the record points at file b
        [("record", 7)],  # the last batch written, not recorded
        [("manifest", 0)],  # every batch recorded, no manifest yet
        [("write", 1), ("write", 4)],
    ],
)
def test_an_interrupted_run_resumes_to_the_same_bytes(tmp_path, monkeypatch, inputs, stops):
    schema, sources = inputs
    preprocess(schema, tmp_path / "ref", sources, batch_rows=BATCH_ROWS)
    out = tmp_path / "out"
    for where, calls in stops:
        with monkeypatch.context() as patch:
            interrupt_after(patch, *WHERE[where], calls)
            try:
                preprocess(schema, out, sources, batch_rows=BATCH_ROWS)
            except KeyboardInterrupt:
                pass
    assert not (out / "manifest.json").exists()
    preprocess(schema, out, sources, batch_rows=BATCH_ROWS)
    assert files(out) == files(tmp_path / "ref")


def test_a_resume_in_the_encoding_pass_does_not_count_again(tmp_path, monkeypatch, inputs):
    schema, sources = inputs
    preprocess(schema, tmp_path / "ref", sources, batch_rows=BATCH_ROWS)
    out = tmp_path / "out"
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        interrupt_after(patch, *WHERE["write"], 5)
        preprocess(schema, out, sources, batch_rows=BATCH_ROWS)
    with monkeypatch.context() as patch:
        interrupt_after(patch, *WHERE["statistics"], 0)
        preprocess(schema, out, sources, batch_rows=BATCH_ROWS)
    assert files(out) == files(tmp_path / "ref")


def test_eval_files_resume_too_and_main_says_so(tmp_path, monkeypatch, inputs, capsys):
    schema, (first, second) = inputs
    argv = ["--schema", str(schema), "--batch-rows", str(BATCH_ROWS), str(first)]
    argv += ["--eval", str(second)]
    assert main([*argv, "--out", str(tmp_path / "ref")]) == 0
    with monkeypatch.context() as patch:
        interrupt_after(patch, *WHERE["write"], 4)
        assert main([*argv, "--out", str(tmp_path / "out")]) == 130
    assert "run the same command again" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert files(tmp_path / "out") == files(tmp_path / "ref")


@pytest.mark.parametrize("where", ["statistics", "write"])
def test_a_rerun_on_anything_else_is_refused(tmp_path, monkeypatch, inputs, where):
    schema, sources = inputs
    out = tmp_path / "out"
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        interrupt_after(patch, *WHERE[where], 2)
        preprocess(schema, out, sources, batch_rows=BATCH_ROWS)
    other_schema = tmp_path / "other.yaml"
    other_schema.write_text(SCHEMA.replace("min_count: 2", "min_count: 3"))
    other_rows = dict(ROWS, click=[1 - c for c in ROWS["click"]])
    other_source = write_parquet(tmp_path / "other.parquet", other_rows)
    refusals = [
        (other_schema, sources, BATCH_ROWS, "with another schema"),
        (schema, [sources[0], other_source], BATCH_ROWS, "from other training files"),
        (schema, sources[:1], BATCH_ROWS, "from other training files"),
        (schema, sources, 4, r"with --batch-rows=3 \(now 4\)"),
    ]
    for rerun_schema, rerun_sources, rows, message in refusals:
        with pytest.raises(DataError, match=message) as refused:
            preprocess(rerun_schema, out, rerun_sources, batch_rows=rows)
        assert "\n" not in str(refused.value) and "choose a new --out" in str(refused.value)
    preprocess(schema, tmp_path / "ref", sources, batch_rows=BATCH_ROWS)
    preprocess(schema, out, sources, batch_rows=BATCH_ROWS)
    assert files(out) == files(tmp_path / "ref")
