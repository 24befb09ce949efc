"""Training on real Criteo rows, preprocessed by the command line, under real ``torchrun``.

The reference is the same run as one plain process: on the same preprocessed rows, 2 ranks
(2-way model parallel) must report the same training losses, and both must learn. Adagrad runs
with ``eps=1e-3``: with a tiny ``eps`` a near-zero gradient whose sign depends on the order of a
sum becomes a full step, so two exact computations of the same step drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_criteo_sample_training import preprocess
from tests.integration.test_launch import launch

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "criteo_kaggle_head10k.tsv"
RUN = [
    "data=criteo",
    "train.steps=30",
    "train.batch_size=256",
    "train.eval_every=30",
    "train.log_every=10",
    "optim.adagrad_eps=1e-3",
    "output.progress_bar=false",
]


def losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["train/loss"] for line in lines if "train/loss" in line]


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory) -> Path:
    if not SAMPLE.is_file():
        pytest.skip(f"the real Criteo sample {SAMPLE} is not on this machine")
    out = tmp_path_factory.mktemp("criteo") / "kaggle_head"
    preprocess(SAMPLE, out, "--hash-size", "5000")
    return out


def test_two_ranks_train_on_real_rows_as_one_process_does(preprocessed, tmp_path):
    data = f"data.path={preprocessed}"
    two = launch([*RUN, data, "parallel.mp_size=2", f"hydra.run.dir={tmp_path / 'two'}"], nproc=2)
    assert two.returncode == 0, two.stderr[-3000:]
    one = launch([*RUN, data, f"hydra.run.dir={tmp_path / 'one'}"], nproc=None)
    assert one.returncode == 0, one.stderr[-3000:]

    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    # Every one of the last 1,428 rows, no longer cut to whole batches of 256 (1,280).
    assert metrics["eval_samples"] == 1428
    assert metrics["bayes_auc"] is None
    assert metrics["auc"] > 0.6
    assert metrics["mp_bytes_sent"] > 0


def test_a_missing_directory_is_one_clear_line(tmp_path):
    run_dir = f"hydra.run.dir={tmp_path / 'run'}"
    done = launch([*RUN, f"data.path={tmp_path / 'absent'}", run_dir], nproc=None)
    assert done.returncode == 2
    assert f"data error: {tmp_path / 'absent'}: no such directory" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
