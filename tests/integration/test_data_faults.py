"""Faulty data through the real entry point: one line naming the fault, exit code 2, no traceback
and no results, as for any other user mistake."""

from __future__ import annotations

import json
import random

import numpy as np

from dct.data.criteo_format import MANIFEST, SPARSE_FILE
from dct.data.criteo_preprocess import preprocess
from tests.integration.test_launch import launch
from tests.unit.test_criteo_preprocess import line, random_rows

BATCH = 64


def test_ids_beyond_a_lowered_table_size_stop_training_with_one_line(tmp_path):
    source = tmp_path / "day.tsv"
    source.write_text("".join(line(row) for row in random_rows(random.Random(0), 700)))
    data = tmp_path / "data"
    preprocess([source], data, hash_size=1000, progress=False)
    sparse = np.fromfile(data / SPARSE_FILE, dtype="<i4").reshape(-1, 26)
    top = int(sparse[:BATCH, 6].max())  # the largest C7 id of the first batch is now outside
    manifest = json.loads((data / MANIFEST).read_text())
    manifest["table_sizes"][6] = top
    (data / MANIFEST).write_text(json.dumps(manifest))
    run_dir = tmp_path / "run"

    done = launch(
        [
            "data=criteo",
            f"data.path={data}",
            "train.steps=2",
            f"train.batch_size={BATCH}",
            "output.progress_bar=false",
            f"hydra.run.dir={run_dir}",
        ],
        nproc=None,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    errors = [text for text in output.splitlines() if "data error:" in text]
    assert len(errors) == 1, output[-3000:]
    assert f"feature C7 (table 6) has id {top}, outside its table of {top} rows" in errors[0]
    assert f"{data / SPARSE_FILE}" in errors[0] and "dct-preprocess-criteo" in errors[0]
    assert "Traceback" not in output
    assert not (run_dir / "metrics.json").exists()
