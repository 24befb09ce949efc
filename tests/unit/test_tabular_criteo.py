"""Criteo as one schema among others: configs/schemas/criteo.yaml through dct-preprocess gives
the arrays dct-preprocess-criteo gives (vocab mode, the same min_count), up to the documented
numbering: the same dense features, and each frequent value one row later (row 1 being the
out-of-vocabulary row, which dct-preprocess-criteo folds into the missing row 0)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from dct.data.criteo_format import open_arrays
from dct.data.criteo_format import read_manifest as read_criteo_manifest
from dct.data.criteo_preprocess import DEFAULT_MIN_COUNT
from dct.data.criteo_preprocess import preprocess as preprocess_criteo
from dct.data.tabular_format import open_split, read_manifest
from dct.data.tabular_preprocess import preprocess
from tests.unit.test_criteo_preprocess import random_rows

SCHEMA = Path(__file__).resolve().parents[2] / "configs" / "schemas" / "criteo.yaml"


def test_the_criteo_schema_matches_the_criteo_preprocessor(tmp_path):
    rows = random_rows(random.Random(5), 600)
    lines = []
    for label, ints, cats in rows:
        ints_text = ["" if x is None else str(x) for x in ints]
        cats_text = ["" if c is None else format(c, "08x") for c in cats]
        lines.append("\t".join([str(label), *ints_text, *cats_text]))
    source = tmp_path / "day.tsv"
    source.write_text("\n".join(lines) + "\n")

    criteo = tmp_path / "criteo"
    preprocess_criteo([source], criteo, mode="vocab", min_count=DEFAULT_MIN_COUNT, progress=False)
    reference = open_arrays(criteo, read_criteo_manifest(criteo))
    # The same file as eval split: vocabularies counted on every row, as the Criteo tool does.
    ours = tmp_path / "ours"
    preprocess(SCHEMA, ours, [source], [source], batch_rows=128)
    found = open_split(ours, read_manifest(ours), "train")

    np.testing.assert_array_equal(found.labels, reference["labels.u8"])
    np.testing.assert_allclose(found.dense, reference["dense.f32"], rtol=1e-6)
    want = reference["sparse.i32"]
    for k, values in enumerate(found.values):
        present = np.array([cats[k] is not None for _, _, cats in rows])
        frequent = want[:, k] > 0
        np.testing.assert_array_equal(values[frequent], want[frequent, k] + 1)
        np.testing.assert_array_equal(values[~present], 0)
        np.testing.assert_array_equal(values[present & ~frequent], 1)
    assert read_manifest(ours).table_sizes == [
        n + 1 for n in read_criteo_manifest(criteo).table_sizes
    ]
