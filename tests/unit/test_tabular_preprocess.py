"""dct-preprocess against references computed here: the same rows as Parquet and as CSV give
identical arrays; vocabularies, out-of-vocabulary and missing rows, hashing, transforms and
multi-valued offsets equal what the schema's documented rules give, row by row; eval splits;
every bad input is one line and exit status 2."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dct.data.criteo_format import DataError
from dct.data.tabular_format import open_split, read_manifest
from dct.data.tabular_preprocess import main, preprocess

SCHEMA = """\
label: {column: click}
dense:
  - {column: price, transform: standardize}
  - {column: views, transform: log1p, fill: -1}
  - {column: score}
sparse:
  - {column: city, min_count: 2}
  - {column: item, hash_buckets: 7}
  - {column: tags, multi_valued: true, separator: "|"}
eval: {fraction: 0.25}
"""

ROWS = {
    "click": [1, 0, 0, 1, 1, 0, 1, 0],
    "price": [10.0, None, 30.0, 12.5, 8.0, 40.0, 22.0, 9.0],
    "views": [0.0, 3.0, None, -2.0, 100.0, 7.0, 1.0, 2.0],
    "score": [0.5, 1.5, None, 2.0, 0.0, -1.0, 3.0, 4.0],
    "city": ["paris", "rome", "paris", None, "oslo", "rome", "lima", "paris"],
    "item": [3, 5, 3, 9, None, 5, 11, 3],
    "tags": [["a", "b"], [], None, ["c"], ["a", "a", "b"], ["b"], ["z"], ["a"]],
}


def write_parquet(path: Path, rows: dict) -> Path:
    pq.write_table(pa.table(rows), path)
    return path


def write_csv(path: Path, rows: dict) -> Path:
    def cell(column: str, value: object) -> str:
        if value is None:
            return ""
        if column == "tags":
            return "|".join(value)
        return str(value)

    lines = [",".join(rows)]
    for i in range(len(rows["click"])):
        lines.append(",".join(cell(c, rows[c][i]) for c in rows))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def schema(tmp_path: Path) -> Path:
    path = tmp_path / "schema.yaml"
    path.write_text(SCHEMA)
    return path


def arrays(out: Path, split: str) -> dict[str, np.ndarray]:
    manifest = read_manifest(out)
    a = open_split(out, manifest, split)
    found = {"labels": np.array(a.labels), "dense": np.array(a.dense)}
    for k, (values, offsets) in enumerate(zip(a.values, a.offsets)):
        found[f"values{k}"] = np.array(values)
        if offsets is not None:
            found[f"offsets{k}"] = np.array(offsets)
    return found


def test_parquet_and_csv_give_identical_arrays(tmp_path, schema):
    preprocess(schema, tmp_path / "pq", [write_parquet(tmp_path / "d.parquet", ROWS)])
    preprocess(schema, tmp_path / "csv", [write_csv(tmp_path / "d.csv", ROWS)])
    for split in ("train", "eval"):
        from_parquet, from_csv = arrays(tmp_path / "pq", split), arrays(tmp_path / "csv", split)
        assert from_parquet.keys() == from_csv.keys()
        for name in from_parquet:
            np.testing.assert_array_equal(from_parquet[name], from_csv[name], err_msg=name)
    a, b = read_manifest(tmp_path / "pq"), read_manifest(tmp_path / "csv")
    assert a.table_sizes == b.table_sizes and a.dense == b.dense


def blake_row(value: str, buckets: int) -> int:
    digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (buckets - 1)


def test_every_value_follows_the_documented_rules(tmp_path, schema):
    out = tmp_path / "out"
    preprocess(schema, out, [write_parquet(tmp_path / "d.parquet", ROWS)], batch_rows=3)
    train_rows = 6  # 8 rows, the last 25 % held out
    manifest = read_manifest(out)
    assert (manifest.splits["train"].rows, manifest.splits["eval"].rows) == (6, 2)
    train = arrays(out, "train")
    held = arrays(out, "eval")
    np.testing.assert_array_equal(train["labels"], ROWS["click"][:train_rows])
    np.testing.assert_array_equal(held["labels"], ROWS["click"][train_rows:])

    # city: counted on the training rows only; paris 2, rome 2, oslo 1 (< min_count 2)
    vocabulary = ["paris", "rome"]
    assert pq.read_table(out / manifest.tables[0].vocabulary)["value"].to_pylist() == vocabulary
    assert manifest.table_sizes[0] == 2 + len(vocabulary)

    def city_row(v):
        return 0 if v is None else 2 + vocabulary.index(v) if v in vocabulary else 1

    expected = [city_row(v) for v in ROWS["city"]]
    np.testing.assert_array_equal(train["values0"], expected[:train_rows])
    np.testing.assert_array_equal(held["values0"], expected[train_rows:])
    assert manifest.unseen_eval_values["city"] == 1  # lima

    items = [0 if v is None else blake_row(str(v), 7) for v in ROWS["item"]]
    np.testing.assert_array_equal(train["values1"], items[:train_rows])
    assert manifest.table_sizes[1] == 7

    # tags: vocabulary by count then value (a 3, b 2, c 1); a missing or empty list is one
    # missing value
    tags_vocabulary = ["a", "b", "c"]
    bags = [[0] if not v else [2 + tags_vocabulary.index(t) for t in v] for v in ROWS["tags"][:6]]
    flat = [t for bag in bags for t in bag]
    np.testing.assert_array_equal(train["values2"], flat)
    np.testing.assert_array_equal(train["offsets2"], np.cumsum([0] + [len(b) for b in bags]))
    np.testing.assert_array_equal(held["values2"], [1, 2])  # z unseen, a
    np.testing.assert_array_equal(held["offsets2"], [0, 1, 2])

    prices = np.array([p for p in ROWS["price"][:train_rows] if p is not None])
    mean, std = prices.mean(), prices.std()
    assert manifest.dense[0].mean == pytest.approx(mean) and manifest.dense[0].std == pytest.approx(
        std
    )
    for i, row in enumerate(ROWS["price"]):
        dense = train["dense"][i] if i < train_rows else held["dense"][i - train_rows]
        want_price = 0.0 if row is None else (row - mean) / std
        views = ROWS["views"][i]
        want_views = -1.0 if views is None else math.log1p(max(views, 0.0))
        score = ROWS["score"][i]
        want = [want_price, want_views, 0.0 if score is None else score]
        np.testing.assert_allclose(dense, want, rtol=1e-6, atol=1e-6)


def test_eval_files_and_a_time_column(tmp_path, schema):
    train_file = write_parquet(tmp_path / "a.parquet", ROWS)
    preprocess(schema, tmp_path / "files", [train_file], [train_file])
    manifest = read_manifest(tmp_path / "files")
    assert (manifest.splits["train"].rows, manifest.splits["eval"].rows) == (8, 8)

    timed = dict(ROWS, when=[5, 1, 7, 3, 8, 2, 6, 4])
    text = SCHEMA.replace("eval: {fraction: 0.25}", "eval: {fraction: 0.25, time_column: when}")
    (tmp_path / "timed.yaml").write_text(text)
    preprocess(
        tmp_path / "timed.yaml", tmp_path / "timed", [write_parquet(tmp_path / "t.parquet", timed)]
    )
    # the two latest rows (times 7 and 8) are held out, in file order
    np.testing.assert_array_equal(arrays(tmp_path / "timed", "eval")["labels"], [0, 1])
    np.testing.assert_array_equal(arrays(tmp_path / "timed", "train")["labels"], [1, 0, 1, 0, 1, 0])


def bad(tmp_path: Path, schema: Path, rows: dict | None = None, csv: str | None = None) -> str:
    """The error dct-preprocess gives for a file holding ``rows`` (or the CSV text ``csv``)."""
    if csv is not None:
        path = tmp_path / "bad.csv"
        path.write_text(csv)
    else:
        path = write_parquet(tmp_path / "bad.parquet", rows)
    with pytest.raises(DataError) as caught:
        preprocess(schema, tmp_path / "out", [path])
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_bad_inputs_each_give_one_line(tmp_path, schema):
    assert "no column 'tags'" in bad(
        tmp_path, schema, {k: v for k, v in ROWS.items() if k != "tags"}
    )
    as_list = dict(ROWS, city=[[c] for c in ROWS["city"]])
    assert "holds lists; declare it multi_valued" in bad(tmp_path, schema, as_list)
    text = write_csv(tmp_path / "ok.csv", ROWS).read_text().replace("10.0", "ten")
    assert "cannot be read" in bad(tmp_path, schema, csv=text) and "price" in bad(
        tmp_path, schema, csv=text
    )
    assert "row 2: the label column 'click' is empty" in bad(
        tmp_path, schema, dict(ROWS, click=[1, 0, None, 1, 1, 0, 1, 0])
    )
    assert "row 1: the label column 'click' holds 2" in bad(
        tmp_path, schema, dict(ROWS, click=[1, 2, 0, 1, 1, 0, 1, 0])
    )
    header_only = ",".join(ROWS) + "\n"
    assert "has no rows" in bad(tmp_path, schema, csv=header_only)
    assert "holds string, not numbers" in bad(tmp_path, schema, dict(ROWS, score=["x"] * 8))


def test_files_with_other_columns_and_unusable_outputs_are_refused(tmp_path, schema):
    first = write_parquet(tmp_path / "a.parquet", ROWS)
    second = write_parquet(tmp_path / "b.parquet", dict(ROWS, extra=list(range(8))))
    with pytest.raises(DataError, match="columns differ from .*not in both: extra"):
        preprocess(schema, tmp_path / "out", [first, second])
    with pytest.raises(DataError, match="no such file"):
        preprocess(schema, tmp_path / "out", [tmp_path / "none.parquet"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        preprocess(schema, tmp_path / "full", [first])
    preprocess(schema, tmp_path / "done", [first])
    with pytest.raises(DataError, match="already holds a finished"):
        preprocess(schema, tmp_path / "done", [first])


def test_an_unfinished_output_is_started_over(tmp_path, schema):
    source = write_parquet(tmp_path / "a.parquet", ROWS)
    preprocess(schema, tmp_path / "ref", [source])
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    (out / ".dct-preprocess-unfinished").touch()
    (out / "train" / "labels.u8").write_bytes(b"\x07" * 100)
    preprocess(schema, out, [source])
    for split in ("train", "eval"):
        for name, array in arrays(tmp_path / "ref", split).items():
            np.testing.assert_array_equal(arrays(out, split)[name], array)


@pytest.mark.parametrize(
    "text, message",
    [
        ("dense: []\nsparse: [{column: a}]\n", "needs a 'label' entry"),
        ("label: {column: y}\nsparse: [{column: a, hash: 3}]\n", "unknown key 'hash'"),
        ("label: {column: y}\nsparse: []\n", "at least one sparse"),
        (
            "label: {column: y}\ndense: [{column: a, transform: log}]\nsparse: [{column: b}]\n",
            "transform 'log' is unknown",
        ),
        (
            "label: {column: y}\nsparse: [{column: a, separator: ','}]\n",
            "separator is for multi_valued",
        ),
        (
            "label: {column: y}\nsparse: [{column: a, hash_buckets: 1}]\n",
            "hash_buckets must be >= 2",
        ),
        ("label: {column: y}\nsparse: [{column: y}]\n", "declared twice"),
        ("label: {column: y}\nsparse: [{column: a}]\neval: {fraction: 1.5}\n", "between 0 and 1"),
        ("label: [\n", "not valid YAML"),
    ],
)
def test_schema_mistakes_exit_2_with_one_line(tmp_path, capsys, text, message):
    (tmp_path / "s.yaml").write_text(text)
    source = write_parquet(tmp_path / "a.parquet", ROWS)
    status = main(["--schema", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), str(source)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_a_schema_survives_its_manifest_round_trip(tmp_path, schema):
    from dct.data.feature_schema import FeatureSchema, load_schema

    parsed = load_schema(schema)
    assert FeatureSchema.from_dict(parsed.to_dict()) == parsed
    preprocess(schema, tmp_path / "out", [write_parquet(tmp_path / "d.parquet", ROWS)])
    assert read_manifest(tmp_path / "out").schema_fingerprint == parsed.fingerprint()
