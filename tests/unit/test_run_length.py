"""How long a run trains: ``train.steps``, or ``train.epochs`` passes over a file source's train
split (``dct.config.resolve_steps``, applied by ``dct.data.sources.with_data_shape``).

The reference is the rule docs/configuration.md states, ``ceil(epochs * train rows /
batch_size)``, computed here with exact fractions; the count must be what every reader of
``train.steps`` sees (the checkpoint interval, the resume check) and what the run's log says.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from fractions import Fraction

import pytest

from dct.checkpoint.meta import FORMAT, check_meta, fingerprint
from dct.checkpoint.store import CheckpointError
from dct.config import (
    AUTO_CHECKPOINT_EVERY,
    DEFAULT_STEPS,
    ConfigError,
    RunConfig,
    TrainConfig,
    checkpoint_every,
    resolve_steps,
    validate,
)
from dct.data.sources import with_data_shape
from tests.unit.test_config import composed
from tests.unit.test_tabular_reader import make_tabular

TRAIN_ROWS, EVAL_ROWS = 150, 70


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    out = tmp_path_factory.mktemp("run_length") / "data"
    make_tabular(out, TRAIN_ROWS, EVAL_ROWS)
    return out


@pytest.mark.parametrize(
    "epochs, rows, batch_size",
    [(1, 150, 32), (2, 150, 32), (1, 128, 32), (3, 1, 1024), (5, 10**15 + 1, 4096)],
)
def test_epochs_make_the_documented_step_count(epochs, rows, batch_size):
    """Every row at least ``epochs`` times, and no step more than needs be (an exact split,
    one row, and a split large enough that float arithmetic would miscount)."""
    train = resolve_steps(TrainConfig(epochs=epochs, batch_size=batch_size), rows)
    expected = math.ceil(Fraction(epochs * rows, batch_size))
    assert (train.steps, train.epochs) == (expected, None)
    assert (train.steps - 1) * batch_size < epochs * rows <= train.steps * batch_size
    assert resolve_steps(train, rows) == train


def test_steps_are_kept_and_default_to_300():
    assert resolve_steps(TrainConfig(steps=7), 150).steps == 7
    assert resolve_steps(TrainConfig()).steps == DEFAULT_STEPS == 300


def test_epochs_without_a_train_split_are_refused():
    with pytest.raises(ConfigError, match="train.epochs=2 counts passes over a train split"):
        resolve_steps(TrainConfig(epochs=2))


def test_a_tabular_run_takes_its_steps_from_the_train_split_and_says_so(tabular, caplog):
    cfg = composed(
        "data=tabular",
        f"data.path={tabular}",
        "data.valid_fraction=0",
        "train.epochs=2",
        "train.batch_size=32",
    )
    validate(cfg, world_size=2)
    with caplog.at_level(logging.INFO, logger="dct.data.sources"):
        shaped = with_data_shape(cfg)
    assert (shaped.train.steps, shaped.train.epochs) == (10, None)  # ceil(2 * 150 / 32)
    assert "train.epochs=2: 10 steps of 32 rows over the 150 train rows" in caplog.text
    assert "evaluating 70 of the 70 eval rows, every one scored" in caplog.text
    validate(shaped, world_size=2)


def test_a_validation_split_sets_the_default_length_and_cadence(tabular, caplog):
    """The last 10 % of the 150 train rows held out: 135 trained on, at most 20 passes of them
    (ceil(20 * 135 / 32) = 85 steps), evaluated 4 times a pass (ceil(135 / (32 * 4)) = 2)."""
    cfg = composed("data=tabular", f"data.path={tabular}", "train.batch_size=32")
    with caplog.at_level(logging.INFO, logger="dct.data.sources"):
        shaped = with_data_shape(cfg)
    assert (shaped.data.valid_size, shaped.train.steps, shaped.train.eval_every) == (15, 85, 2)
    assert "validation: the last 15 of the 150 train rows, held out; training stops after 8 " in (
        caplog.text
    )
    assert with_data_shape(shaped) == shaped
    # Given values are kept; without a validation split the defaults are 300 steps and 100.
    given = with_data_shape(composed(*tabular_args(tabular), "train.steps=7", "train.eval_every=3"))
    assert (given.train.steps, given.train.eval_every) == (7, 3)
    plain = with_data_shape(composed(*tabular_args(tabular), "data.valid_fraction=0"))
    assert (plain.data.valid_size, plain.train.steps, plain.train.eval_every) == (0, 300, 100)


def tabular_args(tabular):
    return ["data=tabular", f"data.path={tabular}", "train.batch_size=32"]


def test_steps_and_epochs_together_are_one_config_error(tabular):
    data = ["data=tabular", f"data.path={tabular}"]
    with pytest.raises(ConfigError) as error:
        validate(composed(*data, "train.epochs=2", "train.steps=100"), world_size=1)
    assert str(error.value) == (
        "train.steps=100 and train.epochs=2: give one of them (set the other to null)"
    )


def test_epochs_on_synthetic_data_are_refused():
    with pytest.raises(ConfigError, match="which synthetic data does not have"):
        validate(composed("train.epochs=1"), world_size=1)


@pytest.mark.parametrize(
    "overrides, given, steps", [([], None, 300), (["experiment=quickstart"], 150, 150)]
)
def test_without_epochs_a_run_is_as_long_as_before(overrides, given, steps):
    cfg = composed(*overrides)
    assert (cfg.train.steps, cfg.train.epochs) == (given, None)
    assert with_data_shape(cfg).train.steps == steps


def test_checkpoints_see_the_step_count_epochs_make():
    """A run made long by epochs checkpoints as a run given as many steps does, and a
    checkpoint past its end is refused naming that count."""
    steps = AUTO_CHECKPOINT_EVERY + 100
    cfg = RunConfig()
    cfg.train = resolve_steps(TrainConfig(epochs=1, batch_size=32), train_rows=32 * steps)
    assert checkpoint_every(cfg.train) == checkpoint_every(replace(cfg.train, steps=steps)) > 0
    meta = {"format": FORMAT, "step": steps + 1, "fingerprint": fingerprint(cfg), "grid": {}}
    with pytest.raises(CheckpointError, match=f"past train.steps={steps}"):
        check_meta(meta, cfg, "CKPT")
