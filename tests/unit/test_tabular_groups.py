"""A schema's ``group`` column through dct-preprocess and the reader: each row's group is the
first 8 bytes of the BLAKE2b digest of its value as text (signed, little-endian), computed
here; the rows missing it share group 0; Parquet and CSV agree; the reader hands the groups to
every batch, the model never sees them."""

from __future__ import annotations

import hashlib

import numpy as np

from dct.data.feature_schema import load_schema
from dct.data.tabular import TabularClicks
from dct.data.tabular_format import GROUPS, read_manifest
from dct.data.tabular_preprocess import preprocess
from tests.unit.test_tabular_preprocess import write_csv, write_parquet

SCHEMA = """\
label: {column: click}
sparse:
  - {column: city}
group: user
eval: {fraction: 0.25}
"""
ROWS = {
    "click": [1, 0, 0, 1, 1, 0, 1, 0],
    "city": ["paris", "rome", "paris", "oslo", "oslo", "rome", "lima", "paris"],
    "user": ["u1", "u2", "u1", None, "u3", "u2", "u1", "u3"],
}


def digest(value: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(value.encode(), digest_size=8).digest(), "little", signed=True
    )


def test_groups_are_hashed_values_and_reach_every_batch(tmp_path):
    (tmp_path / "s.yaml").write_text(SCHEMA)
    assert load_schema(tmp_path / "s.yaml").to_dict()["group"] == "user"
    preprocess(tmp_path / "s.yaml", tmp_path / "pq", [write_parquet(tmp_path / "d.parquet", ROWS)])
    preprocess(tmp_path / "s.yaml", tmp_path / "csv", [write_csv(tmp_path / "d.csv", ROWS)])
    expected = [0 if v is None else digest(v) for v in ROWS["user"]]
    for out in (tmp_path / "pq", tmp_path / "csv"):
        assert read_manifest(out).group_column == "user"
        train = np.fromfile(out / "train" / GROUPS, dtype="<i8")
        held = np.fromfile(out / "eval" / GROUPS, dtype="<i8")
        assert train.tolist() == expected[:6] and held.tolist() == expected[6:]
        source = TabularClicks(out)
        assert source.samples("train", 4, 4).groups.tolist() == (expected[:6] * 2)[4:8]
        assert source.samples("eval", 0, 2).groups.tolist() == expected[6:]


def test_a_schema_without_a_group_writes_none(tmp_path):
    (tmp_path / "s.yaml").write_text(SCHEMA.replace("group: user\n", ""))
    preprocess(tmp_path / "s.yaml", tmp_path / "o", [write_parquet(tmp_path / "d.parquet", ROWS)])
    assert read_manifest(tmp_path / "o").group_column is None
    assert not (tmp_path / "o" / "train" / GROUPS).exists()
    assert TabularClicks(tmp_path / "o").samples("train", 0, 3).groups is None
