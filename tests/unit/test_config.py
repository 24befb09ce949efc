import dataclasses

import pytest

from dct.config import ConfigError, RunConfig, validate


def with_changes(**groups):
    cfg = RunConfig()
    for group, changes in groups.items():
        setattr(cfg, group, dataclasses.replace(getattr(cfg, group), **changes))
    return cfg


def test_defaults_are_valid():
    validate(RunConfig(), world_size=4)


@pytest.mark.parametrize(
    "cfg, world, message",
    [
        (with_changes(train={"batch_size": 1000}), 3, "must be a positive multiple of the world"),
        (with_changes(model={"bottom_mlp": [64, 8]}), 1, "must end at model.embedding_dim=16"),
        (with_changes(optim={"name": "adam"}), 1, "use sgd or adagrad"),
        (with_changes(train={"steps": 0}), 1, "train.steps must be >= 1"),
        (with_changes(data={"cardinalities": [10, 0]}), 1, "cardinalities must all be >= 1"),
        (with_changes(train={"lr": -1.0}), 1, "train.lr must be > 0"),
        (with_changes(parallel={"timeout_s": 0.0}), 1, "parallel.timeout_s must be > 0"),
    ],
)
def test_impossible_config_is_named(cfg, world, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(cfg, world_size=world)
