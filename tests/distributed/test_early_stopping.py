"""Early stopping on a validation split, against runs that never stop early.

The data is ``test_golden_tabular``'s (random rows the model overfits within a few passes at a
high learning rate), its last 20 % of train rows held out for validation. References:

- a run that stopped early and restored its best evaluation's weights equals the run of exactly
  ``best_step`` steps (same losses, bitwise weights and the same eval metrics): the early stop
  changes when training ends, never what it computes;
- a run interrupted (an exception mid-run) after its best evaluation and resumed from its last
  checkpoint ends exactly as the uninterrupted one: the kept weights and the counters come back.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from unittest import mock

import pytest
import torch

from dct.config import ParallelConfig, RunConfig, TabularDataConfig
from dct.data.sources import with_data_shape
from dct.predict.trained import newest_checkpoint, read_meta
from dct.train import loop
from tests.distributed.spawn import run_ranks
from tests.distributed.test_checkpoint_resume import run
from tests.distributed.test_golden import small_config
from tests.distributed.test_golden_tabular import EVAL_ROWS, TRAIN_ROWS
from tests.unit.test_tabular_reader import make_tabular

MAX_STEPS = 40


def stopping_config(path: Path, pipeline: bool = False) -> RunConfig:
    """2 MP ranks (row blocks of every table, or two pipeline stages), SGD at a learning rate
    that overfits 120 rows within a few passes, evaluated every 2 steps, stopping after 2
    evaluations without a lower validation log-loss."""
    cfg = small_config(2, "sgd", "sgd", "row")
    if pipeline:
        cfg.parallel = ParallelConfig(mp_mode="pipeline", cuts=["bottom_mlp.0"], microbatches=2)
    cfg = replace(
        cfg,
        data=TabularDataConfig(path=str(path), eval_size=EVAL_ROWS, valid_fraction=0.2),
        train=replace(
            cfg.train,
            steps=MAX_STEPS,
            batch_size=32,
            lr=0.5,
            eval_every=2,
            log_every=2,
            patience=2,
            checkpoint_every=2,
        ),
    )
    return with_data_shape(cfg)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stopping") / "data"
    make_tabular(path, TRAIN_ROWS, EVAL_ROWS, num_dense=3)
    return path


def stopped_and_reference(cfg: RunConfig, root: Path) -> dict:
    stopped = run(cfg, root / "stopped")
    best = stopped["metrics"]["best_step"]
    exact = replace(cfg, train=replace(cfg.train, steps=best, patience=0))
    return {"stopped": stopped, "reference": run(exact, root / "reference")}


@pytest.mark.parametrize("pipeline", [False, True], ids=["embedding", "pipeline"])
def test_a_stopped_run_equals_the_run_of_its_best_steps(pipeline, data, tmp_path):
    cfg = stopping_config(data, pipeline)
    assert cfg.data.valid_size == 30
    for rank in run_ranks(2, stopped_and_reference, cfg, tmp_path, tmp_dir=tmp_path):
        stopped, reference = rank["stopped"], rank["reference"]
        metrics = stopped["metrics"]
        assert metrics["stopped_early"] and metrics["steps"] < MAX_STEPS
        # Stopped 2 evaluations (4 steps) after the best one, whose weights came back.
        assert metrics["steps"] == metrics["best_step"] + 4
        assert reference["metrics"]["steps"] == metrics["best_step"]
        assert not reference["metrics"]["stopped_early"]
        assert stopped["losses"][: metrics["best_step"]] == reference["losses"]
        for part in ("tables", "dense"):
            assert stopped[part].keys() == reference[part].keys()
            for key, weight in stopped[part].items():
                assert torch.equal(weight, reference[part][key]), key
        for key in ("auc", "logloss", "valid_logloss", "best_step"):
            assert metrics[key] == reference["metrics"][key], key
    # The run's last checkpoint, saved after the restore, says whose weights it holds.
    last = newest_checkpoint(tmp_path / "stopped" / "checkpoints")
    meta = read_meta(last)
    assert (meta["step"], meta["weights_step"]) == (metrics["steps"], metrics["best_step"])


def interrupted_and_resumed(cfg: RunConfig, root: Path, at_call: int) -> dict:
    """The uninterrupted run; then one that raises in its ``at_call``-th step, resumed."""
    reference = run(cfg, root / "reference")
    calls = {"n": 0}
    step = loop._train_step

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise RuntimeError("interrupted")
        return step(*args)

    with mock.patch.object(loop, "_train_step", failing):
        with pytest.raises(RuntimeError, match="interrupted"):
            run(cfg, root / "interrupted")
    return {"reference": reference, "resumed": run(cfg, root / "interrupted")}


def test_an_interrupted_run_resumes_to_the_same_stop(data, tmp_path):
    cfg = stopping_config(data)
    first = run_ranks(2, stopped_and_reference, cfg, tmp_path / "probe", tmp_dir=tmp_path)
    best, stop = (
        first[0]["stopped"]["metrics"]["best_step"],
        first[0]["stopped"]["metrics"]["steps"],
    )
    # Interrupted between the best evaluation and the stop: the resumed run must bring back
    # the kept weights (written into the checkpoint after the best step) and the counters.
    at_call = best + 3
    assert at_call < stop
    for rank in run_ranks(2, interrupted_and_resumed, cfg, tmp_path, at_call, tmp_dir=tmp_path):
        reference, resumed = rank["reference"], rank["resumed"]
        assert resumed["losses"] == reference["losses"]
        assert resumed["metrics"] == reference["metrics"]
        for part in ("tables", "dense"):
            for key, weight in reference[part].items():
                assert torch.equal(resumed[part][key], weight), key
