"""Training on a ``dct-preprocess`` directory (``data=tabular``) under real ``torchrun``.

The directory is written with numpy in the format's layout (``tests.unit.test_tabular_reader``):
multi-valued features with empty and long bags, single-valued ones, three dense features. That
hybrid training on it equals one process is ``tests.distributed.test_golden_tabular``'s; here
the real entry point takes the run's shape from the manifest and writes its results.
"""

from __future__ import annotations

import json
import math

from dct.data.tabular_format import MANIFEST
from tests.integration.test_launch import launch
from tests.unit.test_tabular_reader import make_tabular

RUN = [
    "data=tabular",
    "train.steps=8",
    "train.batch_size=32",
    "train.eval_every=4",
    "train.log_every=4",
    "train.lr=0.05",
    "output.progress_bar=false",
    "output.tensorboard=false",
]


def test_two_ranks_train_on_a_tabular_directory_with_sharded_tables(tmp_path):
    """The last 15 of the 150 training rows held out for validation (the default 10 %), two
    epochs of the other 135, ``ceil(2 * 135 / 32) = 9`` steps, as the log says; every one of the
    70 eval rows scored, though batches of 32 do not divide them; the best evaluation's weights
    (by validation log-loss) restored and reported."""
    data = tmp_path / "data"
    make_tabular(data, train_rows=150, eval_rows=70)
    run_dir = tmp_path / "run"
    by_epochs = [arg for arg in RUN if not arg.startswith("train.steps=")] + ["train.epochs=2"]
    done = launch(
        [*by_epochs, f"data.path={data}", "parallel.mp_size=2", f"hydra.run.dir={run_dir}"],
        nproc=2,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "train.epochs=2: 9 steps of 32 rows over the 135 train rows" in output
    assert "evaluating 70 of the 70 eval rows, every one scored" in output
    assert "validation: the last 15 of the 150 train rows, held out" in output
    assert "'s weights (validation logloss " in output

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 9 and metrics["world_size"] == 2
    assert metrics["best_step"] in (4, 8, 9) and not metrics["stopped_early"]
    assert 0.0 < metrics["valid_logloss"] < 2.0
    assert metrics["eval_samples"] == 70
    assert math.isfinite(metrics["logloss"]) and 0.0 < metrics["logloss"] < 2.0
    assert metrics["bayes_auc"] is None
    assert metrics["mp_bytes_sent"] > 0


def test_an_unfinished_directory_is_one_clear_line(tmp_path):
    data = tmp_path / "data"
    make_tabular(data)
    (data / MANIFEST).unlink()
    done = launch([*RUN, f"data.path={data}", f"hydra.run.dir={tmp_path / 'run'}"], nproc=None)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert f"data error: {data / MANIFEST} is missing" in output
    assert "Traceback" not in output
