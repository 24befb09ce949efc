"""The Criteo-format sample, read back by the project's own Criteo parser and preprocessor and
compared with the synthetic generator it is drawn from."""

from __future__ import annotations

import numpy as np
import pytest

from dct.config import SyntheticDataConfig
from dct.data.criteo_lines import MISSING, parse_lines
from dct.data.criteo_preprocess import preprocess
from dct.data.criteo_sample import CHUNK_ROWS, main, make_sample
from dct.data.synthetic import SyntheticClicks

ROWS = CHUNK_ROWS + 904  # a whole chunk and part of the next


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "sample.tsv"
    make_sample(path, ROWS, seed=3)
    return path


def test_every_line_parses_and_holds_the_generators_samples(sample):
    lines = sample.read_text().splitlines(keepends=True)
    parsed = parse_lines(lines)
    assert len(lines) == ROWS and parsed.bad == []
    batch = SyntheticClicks(SyntheticDataConfig(), seed=3).samples("train", 0, ROWS)

    assert parsed.labels.tolist() == batch.labels.int().tolist()
    dense_present = np.array([[f != "" for f in line.split("\t")[1:14]] for line in lines])
    np.testing.assert_allclose(
        parsed.dense[dense_present], batch.dense.numpy()[dense_present], rtol=1e-6
    )
    assert (parsed.dense[~dense_present] == 0).all()

    ids = np.stack([values.numpy() for values in batch.sparse.values], axis=1)
    present = parsed.categorical != MISSING
    for column in range(26):
        words, column_ids = parsed.categorical[present[:, column], column], ids[:, column]
        pairs = set(zip(words.tolist(), column_ids[present[:, column]].tolist()))
        # One hex value per id and one id per hex value: the file keeps every id apart.
        assert len(pairs) == len(set(words.tolist())) == len({i for _, i in pairs})

    # Fields go missing as in Criteo, column by column, never everywhere.
    assert 0.02 < 1 - dense_present.mean() < 0.5 and 0.02 < 1 - present.mean() < 0.25
    assert present.any(axis=0).all() and dense_present.any(axis=0).all()


def test_a_seed_draws_one_sample_and_a_shorter_one_is_its_start(sample, tmp_path):
    make_sample(tmp_path / "again.tsv", ROWS, seed=3)
    make_sample(tmp_path / "short.tsv", 100, seed=3)
    make_sample(tmp_path / "other.tsv", ROWS, seed=4)
    text = sample.read_text()
    assert (tmp_path / "again.tsv").read_text() == text
    assert text.startswith((tmp_path / "short.tsv").read_text())
    assert (tmp_path / "other.tsv").read_text() != text


def test_the_preprocessor_reads_every_row(sample, tmp_path):
    manifest = preprocess([sample], tmp_path / "out", mode="vocab", progress=False)
    assert manifest.rows == ROWS and not any(manifest.bad_lines.values())
    assert len(manifest.table_sizes) == 26 and min(manifest.table_sizes) > 1


def test_the_command_writes_into_new_folders_and_refuses_in_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "data" / "s.tsv"), "--rows", "10"]) == 0
    assert len((tmp_path / "data" / "s.tsv").read_text().splitlines()) == 10
    assert not list((tmp_path / "data").glob("*.partial"))

    (tmp_path / "file").write_text("")
    assert main([str(tmp_path / "file" / "s.tsv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'file' / 's.tsv'}: cannot write the sample")
    assert len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "s.tsv"), "--rows", "0"])
    assert stop.value.code == 2
