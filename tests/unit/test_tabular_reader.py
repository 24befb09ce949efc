"""``TabularClicks`` against a plain Python reading of the same rows.

The directories are written here with numpy in ``dct-preprocess``'s format
(``dct.data.tabular_format``): a multi-valued feature with empty and long bags, single-valued
ones, dense features or none. The reference walks the rows one by one, bag by bag.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from dct.config import ConfigError, RunConfig, TabularDataConfig, TrainConfig, validate
from dct.data.criteo_format import DataError
from dct.data.sources import ShapedTabularConfig, open_source, with_data_shape
from dct.data.tabular import TabularClicks
from dct.data.tabular_format import (
    DENSE,
    LABELS,
    MANIFEST,
    DenseStats,
    SplitInfo,
    TableInfo,
    TabularManifest,
    offsets_file,
    values_file,
    write_manifest,
)

# A multi-valued feature (bags of 0 to 40 ids), two single-valued ones, a second multi-valued one.
TABLES = [
    TableInfo("genres", 30, multi_valued=True),
    TableInfo("city", 7, multi_valued=False),
    TableInfo("user_id", 500, multi_valued=False),
    TableInfo("tags", 60, multi_valued=True),
]
LONG_BAG = 40


@dataclasses.dataclass
class SplitRows:
    """One split as Python sees it: ``features[k][row]`` is a list of ids (one for a
    single-valued feature)."""

    labels: np.ndarray
    dense: np.ndarray
    features: list[list[list[int]]]


def random_split(rng: np.random.Generator, rows: int, num_dense: int, tables) -> SplitRows:
    """Rows with a multi-valued bag of every length from 0 to ``LONG_BAG`` (empty ones
    included), a label that depends a little on the first feature, and some dense values."""
    features = []
    for table in tables:
        if table.multi_valued:
            lengths = rng.integers(0, 4, rows)
            lengths[rows // 2 :: 17] = LONG_BAG
            lengths[:3] = 0
            bags = [rng.integers(0, table.table_rows, n).tolist() for n in lengths]
        else:
            bags = [[int(i)] for i in rng.integers(0, table.table_rows, rows)]
        features.append(bags)
    signal = np.array([sum(bag) % 2 for bag in features[0]]) if features else 0
    labels = ((rng.random(rows) < 0.3) ^ (signal == 1)).astype(np.uint8)
    dense = rng.normal(size=(rows, num_dense)).astype(np.float32)
    return SplitRows(labels, dense, features)


def write_tabular(
    out: Path, splits: dict[str, SplitRows], tables=TABLES, num_dense: int | None = None
) -> TabularManifest:
    """``splits`` written as ``dct-preprocess`` would: flat arrays and a manifest."""
    num_dense = splits["train"].dense.shape[1] if num_dense is None else num_dense
    infos = {}
    for split, data in splits.items():
        base = out / split
        base.mkdir(parents=True)
        data.labels.astype("u1").tofile(base / LABELS)
        data.dense.astype("<f4").tofile(base / DENSE)
        counts = []
        for k, (table, bags) in enumerate(zip(tables, data.features)):
            values = np.array([i for bag in bags for i in bag], dtype="<i4")
            values.tofile(base / values_file(k))
            counts.append(len(values))
            if table.multi_valued:
                offsets = np.concatenate([[0], np.cumsum([len(bag) for bag in bags])])
                offsets.astype("<i8").tofile(base / offsets_file(k))
        infos[split] = SplitInfo(rows=len(data.labels), values=counts)
    manifest = TabularManifest(
        schema={},
        schema_fingerprint="test",
        splits=infos,
        dense=[DenseStats(f"d{i}", "none", 0.0) for i in range(num_dense)],
        tables=list(tables),
        sources={},
    )
    write_manifest(out, manifest)
    return manifest


def make_tabular(
    out: Path, train_rows: int = 37, eval_rows: int = 11, num_dense: int = 3, tables=TABLES, seed=0
) -> dict[str, SplitRows]:
    rng = np.random.default_rng(seed)
    splits = {
        "train": random_split(rng, train_rows, num_dense, tables),
        "eval": random_split(rng, eval_rows, num_dense, tables),
    }
    write_tabular(out, splits, tables)
    return splits


def reference(data: SplitRows, start: int, count: int):
    """Rows ``start .. start + count``, wrapping around, one at a time."""
    rows = [(start + i) % len(data.labels) for i in range(count)]
    values, offsets = [], []
    for bags in data.features:
        ids, ends = [], [0]
        for row in rows:
            ids += bags[row]
            ends.append(len(ids))
        values.append(ids)
        offsets.append(ends)
    dense = [data.dense[row].tolist() for row in rows]
    return values, offsets, dense, [float(data.labels[row]) for row in rows]


def assert_matches(batch, data: SplitRows, start: int, count: int) -> None:
    values, offsets, dense, labels = reference(data, start, count)
    assert batch.sparse.num_features == len(values)
    for k in range(len(values)):
        assert batch.sparse.values[k].dtype == batch.sparse.offsets[k].dtype == torch.int64
        assert batch.sparse.values[k].tolist() == values[k], k
        assert batch.sparse.offsets[k].tolist() == offsets[k], k
    assert batch.dense.dtype == batch.labels.dtype == torch.float32
    assert batch.dense.shape == (count, data.dense.shape[1])
    assert batch.dense.tolist() == dense
    assert batch.labels.tolist() == labels


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("tabular") / "data"
    return out, make_tabular(out)


@pytest.mark.parametrize(
    "split, start, count",
    [
        ("train", 0, 5),
        ("train", 4, 20),
        ("train", 30, 12),  # straddles the split's end: rows 30..36, then 0..4
        ("train", 37 * 3 + 2, 6),  # the fourth epoch
        ("train", 5, 90),  # more rows than the split: read it over twice and a bit
        ("train", 9, 0),
        ("eval", 0, 11),
        ("eval", 7, 9),
    ],
)
def test_samples_equal_the_python_reading(written, split, start, count):
    out, splits = written
    assert_matches(TabularClicks(out).samples(split, start, count), splits[split], start, count)


def test_every_row_read_in_batches_covers_the_bags_long_and_empty(written):
    out, splits = written
    source = TabularClicks(out)
    for start in range(0, 37, 8):
        assert_matches(source.samples("train", start, 8), splits["train"], start, 8)
    lengths = [len(bag) for bag in splits["train"].features[0]]
    assert 0 in lengths and LONG_BAG in lengths


class Recorded(np.ndarray):
    """An array that notes the size of everything read from it by indexing."""

    sizes: list[int] = []

    def __getitem__(self, key):
        found = super().__getitem__(key)
        Recorded.sizes.append(np.size(found))
        return found


def test_a_read_touches_only_the_rows_and_values_it_asks_for(tmp_path):
    """Every index into the mapped arrays fetches at most the batch's rows (plus one offset)
    or its bags' values, however long the split."""
    out = tmp_path / "data"
    make_tabular(out, train_rows=20_000, eval_rows=2)
    source = TabularClicks(out)
    train = source.arrays["train"]
    source.arrays["train"] = dataclasses.replace(
        train,
        labels=train.labels.view(Recorded),
        dense=train.dense.view(Recorded),
        values=[v.view(Recorded) for v in train.values],
        offsets=[None if o is None else o.view(Recorded) for o in train.offsets],
    )
    Recorded.sizes = []
    batch = source.samples("train", 19_995, 8)
    # 8 rows of 3 dense values, or all the values of one feature's 8 bags
    most = max(8 * 3, *(len(values) for values in batch.sparse.values))
    assert Recorded.sizes and max(Recorded.sizes) <= most < 200


def test_the_source_declares_the_manifest_shape(written):
    out, _ = written
    source = TabularClicks(out)
    assert source.table_sizes == [30, 7, 500, 60]
    assert source.num_dense == 3
    assert (source.split_rows("train"), source.split_rows("eval")) == (37, 11)


def test_no_dense_feature_reads_as_zero_columns(tmp_path):
    splits = make_tabular(tmp_path / "data", num_dense=0)
    source = TabularClicks(tmp_path / "data")
    assert source.num_dense == 0
    batch = source.samples("train", 33, 10)
    assert batch.dense.shape == (10, 0) and batch.dense.dtype == torch.float32
    assert_matches(batch, splits["train"], 33, 10)


@pytest.mark.parametrize("feature, column", [(0, "genres"), (2, "user_id")])
def test_an_id_outside_its_table_is_one_line_naming_file_column_id_and_size(
    tmp_path, feature, column
):
    out = tmp_path / "data"
    splits = make_tabular(out)
    path = out / "train" / values_file(feature)
    stored = np.fromfile(path, dtype="<i4")
    size = TABLES[feature].table_rows
    position = len(stored) - 1  # the last row's last id: only a batch holding it fails
    stored[position] = size
    stored.tofile(path)
    bags = splits["train"].features[feature]
    row = max(r for r, bag in enumerate(bags) if bag)
    source = TabularClicks(out)
    source.samples("train", 0, row)  # the rows before it read fine

    with pytest.raises(DataError) as error:
        source.samples("train", row - 2, 5)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}, row {row}: feature '{column}' (table {feature}) has id ")
    assert f"has id {size}, outside its table of {size} rows" in message
    assert f"as {out / MANIFEST} says" in message and "dct-preprocess again" in message


def test_a_negative_id_is_named_too(tmp_path):
    out = tmp_path / "data"
    make_tabular(out)
    path = out / "eval" / values_file(1)
    stored = np.fromfile(path, dtype="<i4")
    stored[4] = -3
    stored.tofile(path)
    with pytest.raises(DataError, match=re.escape(f"{path}, row 4: feature 'city' (table 1) has")):
        TabularClicks(out).samples("eval", 0, 11)


def test_offsets_outside_their_values_are_one_line_naming_the_file(tmp_path):
    out = tmp_path / "data"
    make_tabular(out)
    path = out / "train" / offsets_file(3)
    offsets = np.fromfile(path, dtype="<i8")
    offsets[5] = offsets[-1] + 7
    offsets.tofile(path)
    with pytest.raises(DataError, match=re.escape(f"{path}, row 4: feature 'tags' has the bag")):
        TabularClicks(out).samples("train", 0, 8)


def test_a_missing_manifest_is_one_line_saying_what_to_do(tmp_path):
    out = tmp_path / "data"
    make_tabular(out)
    (out / MANIFEST).unlink()
    with pytest.raises(DataError, match=re.escape(f"{out / MANIFEST} is missing")) as error:
        TabularClicks(out)
    assert "run (or resume) dct-preprocess into it" in str(error.value)


@pytest.mark.parametrize("name", [values_file(0), offsets_file(3), values_file(2), DENSE, LABELS])
def test_an_array_of_another_size_than_the_manifest_says_is_refused(tmp_path, name):
    out = tmp_path / "data"
    make_tabular(out)
    path = out / "eval" / name
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(DataError, match=re.escape(f"{path} is ")) as error:
        TabularClicks(out)
    assert "do not belong together" in str(error.value)


def test_an_empty_split_is_refused(tmp_path):
    out = tmp_path / "data"
    rng = np.random.default_rng(0)
    write_tabular(
        out,
        {"train": random_split(rng, 5, 1, TABLES), "eval": random_split(rng, 0, 1, TABLES)},
    )
    with pytest.raises(DataError, match="the eval split has no rows"):
        TabularClicks(out)


def test_a_run_without_a_directory_says_how_to_make_one():
    with pytest.raises(ConfigError, match=re.escape("data=tabular needs data.path=DIR: a dir")):
        validate(RunConfig(data=TabularDataConfig()), world_size=1)


def tabular_config(path: Path, batch_size: int, eval_size: int | None) -> RunConfig:
    return RunConfig(
        data=TabularDataConfig(path=str(path), eval_size=eval_size),
        train=TrainConfig(batch_size=batch_size),
    )


def test_the_run_takes_its_shape_from_the_manifest(written):
    """As for Criteo: table sizes and dense count filled in, eval_size at most the eval split."""
    out, _ = written
    cfg = with_data_shape(tabular_config(out, batch_size=4, eval_size=100))
    assert isinstance(open_source(cfg), TabularClicks)
    assert type(cfg.data) is ShapedTabularConfig
    assert (cfg.data.num_dense, cfg.data.cardinalities) == (3, [30, 7, 500, 60])
    # All 11 eval rows, though batches of 4 do not divide them: the last batch is padded and
    # its padding left out of the metrics (dct.train.evaluation), so nothing is cut.
    assert (cfg.data.path, cfg.data.eval_size) == (str(out), 11)
    assert with_data_shape(cfg) == cfg


def test_an_eval_split_smaller_than_a_global_batch_is_evaluated_whole(written):
    """Once refused as a config error; now the one padded batch scores its 11 rows."""
    out, _ = written
    assert with_data_shape(tabular_config(out, batch_size=16, eval_size=None)).data.eval_size == 11


def test_an_eval_split_of_one_class_is_one_line_not_a_traceback():
    from dct.train.evaluation import auc

    with pytest.raises(DataError, match="all have label 0: AUC is undefined"):
        auc(np.zeros(5), np.linspace(0, 1, 5))
    assert auc(np.array([0.0, 1.0, 1.0]), np.array([0.2, 0.9, 0.1])) == 0.5
