"""Shared tables and mean pooling through dct-preprocess, against references computed here: a
shared vocabulary counts every sharing column's training values (by count, then value), each
column's rows follow it; hashed columns sharing a table hash alike; the manifest says which table
each feature looks up and how it pools; mistakes in the schema are one line and exit 2."""

from __future__ import annotations

import collections
import hashlib

import numpy as np
import pyarrow.parquet as pq
import pytest

from dct.data.feature_schema import FeatureSchema, load_schema
from dct.data.tabular_format import read_manifest
from dct.data.tabular_preprocess import main, preprocess
from tests.unit.test_tabular_preprocess import arrays, write_parquet

SCHEMA = """\
label: {column: click}
sparse:
  - {column: home, min_count: 2}
  - {column: work, table: home, min_count: 2}
  - {column: item, hash_buckets: 11}
  - {column: seen, multi_valued: true, table: items, hash_buckets: 11, pooling: mean}
  - {column: also, multi_valued: true, table: items, hash_buckets: 11}
eval: {fraction: 0.25}
"""

ROWS = {
    "click": [1, 0, 0, 1, 1, 0, 1, 0],
    "home": ["paris", "rome", "paris", None, "oslo", "rome", "lima", "paris"],
    "work": ["oslo", "oslo", "rome", "rome", "paris", "bern", "rome", "oslo"],
    "item": [3, 5, 3, 9, None, 5, 11, 3],
    "seen": [["3", "5"], [], None, ["9"], ["3", "3"], ["5"], ["11"], ["3"]],
    "also": [["a"], ["b", "3"], [], None, ["a"], ["a"], ["c"], ["d"]],
}
TRAIN = 6


def blake_row(value: str, buckets: int) -> int:
    digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (buckets - 1)


def test_shared_tables_count_and_encode_every_sharing_column(tmp_path):
    (tmp_path / "s.yaml").write_text(SCHEMA)
    out = tmp_path / "out"
    preprocess(tmp_path / "s.yaml", out, [write_parquet(tmp_path / "d.parquet", ROWS)])
    manifest = read_manifest(out)

    # home and work share a vocabulary counted over both columns' 6 training rows:
    # rome 5, oslo 4, paris 4 (kept, by count then value), lima 1 and bern 1 (dropped)
    counts = collections.Counter(
        v for column in ("home", "work") for v in ROWS[column][:TRAIN] if v is not None
    )
    vocabulary = sorted((v for v, c in counts.items() if c >= 2), key=lambda v: (-counts[v], v))
    assert vocabulary == ["rome", "oslo", "paris"]
    for k in (0, 1):
        assert pq.read_table(out / manifest.tables[k].vocabulary)["value"].to_pylist() == vocabulary

    def row(v):
        return 0 if v is None else 2 + vocabulary.index(v) if v in vocabulary else 1

    train, held = arrays(out, "train"), arrays(out, "eval")
    for k, column in enumerate(("home", "work")):
        expected = [row(v) for v in ROWS[column]]
        np.testing.assert_array_equal(train[f"values{k}"], expected[:TRAIN])
        np.testing.assert_array_equal(held[f"values{k}"], expected[TRAIN:])

    # item hashes into a table of its own, seen and also into one they share (11 rows each);
    # a missing or empty list is row 0
    items = [0 if v is None else blake_row(str(v), 11) for v in ROWS["item"]]
    np.testing.assert_array_equal(train["values2"], items[:TRAIN])
    for k, column in ((3, "seen"), (4, "also")):
        bags = [[0] if not v else [blake_row(t, 11) for t in v] for v in ROWS[column][:TRAIN]]
        np.testing.assert_array_equal(train[f"values{k}"], [t for bag in bags for t in bag])
        np.testing.assert_array_equal(train[f"offsets{k}"], np.cumsum([0] + [len(b) for b in bags]))

    layout = manifest.features
    assert layout.table_sizes == (2 + 3, 11, 11)
    assert layout.feature_tables == (0, 0, 1, 2, 2)
    assert layout.pooling() == ["sum", "sum", "sum", "mean", "sum"]


def test_the_fingerprint_records_sharing_and_pooling_only_where_declared(tmp_path):
    (tmp_path / "shared.yaml").write_text(SCHEMA)
    shared = load_schema(tmp_path / "shared.yaml")
    assert FeatureSchema.from_dict(shared.to_dict()) == shared
    entries = shared.to_dict()["sparse"]
    assert [e.get("table") for e in entries] == [None, "home", None, "items", "items"]
    assert [e.get("pooling") for e in entries] == [None, None, None, "mean", None]
    # A schema declaring neither keeps the fingerprint it had before these keys existed.
    (tmp_path / "plain.yaml").write_text("label: {column: click}\nsparse: [{column: home}]\n")
    plain = load_schema(tmp_path / "plain.yaml")
    assert plain.to_dict()["sparse"] == [
        {"column": "home", "multi_valued": False, "separator": None, "min_count": 1,
         "hash_buckets": None}
    ]  # fmt: skip


@pytest.mark.parametrize(
    "sparse, message",
    [
        (
            "[{column: a, min_count: 2}, {column: b, table: a}]",
            "'a' and 'b' share table 'a' but differ in min_count or hash_buckets",
        ),
        (
            "[{column: a, hash_buckets: 9}, {column: b, table: a, hash_buckets: 8}]",
            "differ in min_count or hash_buckets",
        ),
        ("[{column: a, pooling: max}]", "pooling 'max' is unknown; use one of sum, mean"),
        ("[{column: a, table: [x]}]", "table must be str or int"),
    ],
)
def test_sharing_mistakes_exit_2_with_one_line(tmp_path, capsys, sparse, message):
    (tmp_path / "s.yaml").write_text(f"label: {{column: y}}\nsparse: {sparse}\n")
    source = write_parquet(tmp_path / "d.parquet", {"y": [0, 1], "a": ["x", "y"], "b": ["y", "z"]})
    status = main(["--schema", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), str(source)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
