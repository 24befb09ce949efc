"""``dct.predict`` without a checkpoint: the schema a manifest records is the schema the directory
was preprocessed with; the data directory a run's record names is found; a header-less file
without its label column is read as one with it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dct.data.criteo_format import DataError
from dct.data.feature_schema import parse_schema
from dct.data.tabular_format import DenseStats, TableInfo, TabularManifest
from dct.data.tabular_read import read_batches
from dct.predict.scoring import reading_schema
from dct.predict.trained import PredictError, check_same_data, find_data, manifest_schema

SCHEMAS = [
    {
        "label": {"column": "income", "positive": [">50K", 1]},
        "dense": [{"column": "age", "transform": "standardize", "fill": -1}],
        "sparse": [
            {"column": "city", "min_count": 3},
            {"column": "tags", "multi_valued": True, "separator": "|"},
            {"column": "user", "hash_buckets": 100},
        ],
        "eval": {"fraction": 0.2, "time_column": "ts"},
    },
    {"label": {"column": "rating", "threshold": 4}, "sparse": [{"column": "item"}]},
]


def manifest(schema, fingerprint=None, dense=0, tables=(3,)) -> TabularManifest:
    return TabularManifest(
        schema=schema.to_dict(),
        schema_fingerprint=fingerprint or schema.fingerprint(),
        splits={},
        dense=[DenseStats(f"d{i}", "none", 0.0) for i in range(dense)],
        tables=[TableInfo(f"t{i}", n, multi_valued=False) for i, n in enumerate(tables)],
        sources={},
    )


@pytest.mark.parametrize("raw", SCHEMAS)
def test_the_manifests_schema_is_the_one_preprocessed_with(raw):
    schema = parse_schema(raw, "s.yaml")
    again = manifest_schema(manifest(schema))
    assert again == schema and again.fingerprint() == schema.fingerprint()


def test_same_data_compares_a_recorded_fingerprint_then_the_shape(tmp_path):
    schema = parse_schema(SCHEMAS[1], "s.yaml")
    meta = {"fingerprint": {"data.num_dense": 0, "data.cardinalities": [3]}}
    check_same_data(manifest(schema), meta, tmp_path / "ck", tmp_path / "d")
    recorded = {**meta, "data": {"schema_fingerprint": "a" * 64}}
    with pytest.raises(DataError, match="is not the one .* was trained on"):
        check_same_data(manifest(schema), recorded, tmp_path / "ck", tmp_path / "d")
    with pytest.raises(DataError, match=r"tables of \[4\] rows, but .* on 0 and \[3\]"):
        check_same_data(manifest(schema, tables=(4,)), meta, tmp_path / "ck", tmp_path / "d")


def test_the_data_directory_comes_from_the_option_the_meta_or_the_run(tmp_path):
    checkpoint = tmp_path / "run" / "checkpoints" / "step_00000004"
    (tmp_path / "data").mkdir()
    assert find_data(checkpoint, {}, tmp_path / "given") == tmp_path / "given"
    meta = {"data": {"path": str(tmp_path / "data")}}
    assert find_data(checkpoint, meta, None) == tmp_path / "data"
    with pytest.raises(PredictError, match="does not say which .* --data DIR"):
        find_data(checkpoint, {}, None)
    hydra = tmp_path / "run" / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "config.yaml").write_text("data:\n  name: synthetic\n  seed: 0\n")
    with pytest.raises(PredictError, match="names no data.path .* --data DIR"):
        find_data(checkpoint, {}, None)
    (hydra / "config.yaml").write_text("data:\n  name: tabular\n  path: data\n")
    (hydra / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {tmp_path}\n")
    assert find_data(checkpoint, {}, None) == tmp_path / "data"
    (tmp_path / "data").rmdir()
    with pytest.raises(PredictError, match=r"does not exist \(moved\?\); give it with --data"):
        find_data(checkpoint, {}, None)


def test_a_headerless_file_without_its_label_column_reads_the_same_features(tmp_path):
    """As Criteo's test logs: the schema's columns name the labelled files' fields."""
    raw = {
        "columns": ["id", "click", "price", "city"],
        "label": {"column": "click"},
        "dense": [{"column": "price"}],
        "sparse": [{"column": "city"}],
    }
    schema = parse_schema(raw, "s.yaml")
    (tmp_path / "with.tsv").write_text("a\t1\t2.5\tparis\nb\t0\t\trome\n")
    (tmp_path / "without.tsv").write_text("a\t2.5\tparis\nb\t\trome\n")
    read = {}
    for name in ("with.tsv", "without.tsv"):
        reading = reading_schema(tmp_path / name, schema, "id")
        batches = read_batches(tmp_path / name, reading, batch_rows=1)
        read[name] = pa.Table.from_batches(list(batches)).to_pydict()
    expected = {"id": ["a", "b"], "price": [2.5, None], "city": ["paris", "rome"]}
    assert read["with.tsv"] == read["without.tsv"] == expected
    (tmp_path / "short.tsv").write_text("a\tparis\n")
    with pytest.raises(DataError, match="Expected 4 columns, got 2"):
        reading_schema(tmp_path / "short.tsv", schema, None)
