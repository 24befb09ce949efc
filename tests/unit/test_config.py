import dataclasses

import pytest

from dct.config import (
    AUTO_CHECKPOINT_EVERY,
    ConfigError,
    RunConfig,
    checkpoint_every,
    mp_codec_names,
    validate,
)


def with_changes(**groups):
    cfg = RunConfig()
    for group, changes in groups.items():
        setattr(cfg, group, dataclasses.replace(getattr(cfg, group), **changes))
    return cfg


def with_dct_dp(**changes):
    cfg = RunConfig()
    cfg.dct.dp = dataclasses.replace(cfg.dct.dp, **changes)
    return cfg


def with_dct_mp(**changes):
    cfg = RunConfig()
    cfg.dct.mp = dataclasses.replace(cfg.dct.mp, **changes)
    return cfg


def with_dp_hook(dct_dp_enabled=False, **changes):
    cfg = with_dct_dp(enabled=dct_dp_enabled)
    cfg.dp_hook = dataclasses.replace(cfg.dp_hook, **changes)
    return cfg


def pipeline(cuts=("bottom_mlp.0",), **parallel):
    cfg = with_changes(parallel={"mp_mode": "pipeline", **parallel})
    cfg.model.cuts = list(cuts)
    return cfg


def test_defaults_are_valid():
    validate(RunConfig(), world_size=4)
    validate(with_dp_hook(name="fp16"), world_size=2)
    validate(with_dp_hook(name="powersgd", powersgd_rank=4, powersgd_start_step=2), world_size=2)
    validate(pipeline(cuts=["bottom_mlp.0", "top_mlp.0"]), world_size=3)


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
        (with_dct_dp(density=0.0), 1, "dct.dp.density=0.0 must be in (0, 1]"),
        (with_dct_dp(density=2.0), 1, "dct.dp.density=2.0 must be in (0, 1]"),
        (with_dct_dp(update_every=0), 1, "dct.dp.update_every must be >= 1"),
        (with_dct_dp(warmup_steps=1), 1, "dct.dp.warmup_steps=1 must be >= 2"),
        (with_dct_dp(value_dtype="int8"), 1, "use float32, float16 or bfloat16"),
        (with_dct_dp(guard_factor=0.5), 1, "dct.dp.guard_factor must be > 1"),
        (with_dct_dp(guard_window=0), 1, "dct.dp.guard_window must be >= 1"),
        (with_changes(data={"seed": -1}), 1, "data.seed=-1 must be >= 0, or null to follow seed"),
        (with_dct_dp(threshold_sample_size=-5), 1, "dct.dp.threshold_sample_size must be >= 0"),
        (with_changes(data={"name": "criteo"}), 1, "data=criteo needs data.path=DIR"),
        (with_changes(data={"name": "tsv"}), 1, "use data=synthetic or data=criteo"),
        (with_changes(data={"eval_fraction": 1.0}), 1, "data.eval_fraction must be in (0, 1)"),
        (with_changes(parallel={"mp_mode": "tensor"}), 1, "use embedding (tables sharded"),
        (with_changes(model={"cuts": ["top_mlp.0"]}), 1, "needs parallel.mp_mode=pipeline"),
        (pipeline(cuts=()), 1, "parallel.mp_mode=pipeline needs model.cuts"),
        (pipeline(mp_size=3), 2, "parallel.mp_size=3, but model.cuts="),
        (pipeline(), 3, "3 processes for 2 pipeline stages: launch a multiple of 2"),
        (pipeline(microbatches=3), 2, "does not split into 1 replica(s) x parallel.microbatches=3"),
        (pipeline(microbatches=384), 4, "does not split into 2 replica(s) x parallel.microbatch"),
        (with_dp_hook(name="topk"), 1, "dp_hook.name='topk': use allreduce, fp16 or powersgd"),
        (with_dp_hook(powersgd_rank=0), 1, "dp_hook.powersgd_rank must be >= 1"),
        (with_dp_hook(powersgd_start_step=1), 1, "dp_hook.powersgd_start_step=1 must be >= 2"),
        (with_dp_hook(True, name="fp16"), 1, "dct.dp.enabled=true and dp_hook.name=fp16: pick"),
        (with_dp_hook(True, name="powersgd"), 1, "and dp_hook.name=powersgd: pick one gradient"),
        (with_dct_mp(density=0.0), 1, "dct.mp.density=0.0 must be in (0, 1]"),
        (with_dct_mp(density=1.5), 1, "dct.mp.density=1.5 must be in (0, 1]"),
        (with_dct_mp(value_dtype="int8"), 1, "dct.mp.value_dtype='int8': use float32"),
        (with_dct_mp(grad_dtype="half"), 1, "dct.mp.grad_dtype='half': use float32"),
        (with_dct_mp(granularity="row"), 1, "dct.mp.granularity='row': use sample"),
        (
            with_changes(train={"checkpoint_every": 15}),
            1,
            "train.checkpoint_every=15 must be a multiple of train.log_every=10",
        ),
        (with_changes(train={"checkpoint_every": -10}), 1, "train.checkpoint_every=-10 must be"),
        (with_changes(train={"keep_checkpoints": 0}), 1, "train.keep_checkpoints must be >= 1"),
        (with_dct_mp(codec="int2"), 1, "dct.mp.codec='int2': use one of dense, fp16, bf16"),
        (with_dct_mp(grad_codec="fp8"), 1, "dct.mp.grad_codec='fp8': use one of dense"),
        (with_dct_mp(codec="topk", grad_codec="int8"), 1, "topk pairs only with topk"),
        (with_dct_mp(codec="int8", grad_codec="topk"), 1, "topk pairs only with topk"),
        (with_dct_mp(codec="int8", grad_rounding="up"), 1, "dct.mp.grad_rounding='up': use"),
        (
            dataclasses.replace(pipeline(), dct=with_dct_mp(dedup=True).dct),
            2,
            "dct.mp.dedup=true de-duplicates the embedding all-to-all, which pipeline mode",
        ),
    ],
)
def test_impossible_config_is_named(cfg, world, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(cfg, world_size=world)


@pytest.mark.parametrize(
    "steps, log_every, every, expected",
    [
        (AUTO_CHECKPOINT_EVERY, 10, None, 0),
        (AUTO_CHECKPOINT_EVERY + 1, 10, None, AUTO_CHECKPOINT_EVERY),
        (5000, 300, None, 600),
        (100, 10, 20, 20),
        (5000, 10, 0, 0),
    ],
)
def test_checkpoint_interval(steps, log_every, every, expected):
    """Unset, runs longer than AUTO_CHECKPOINT_EVERY steps checkpoint about that often, at a
    logging step."""
    cfg = with_changes(train={"steps": steps, "log_every": log_every, "checkpoint_every": every})
    assert checkpoint_every(cfg.train) == expected


@pytest.mark.parametrize(
    "changes, names",
    [
        ({}, ("dense", "dense")),
        ({"enabled": True}, ("topk", "topk")),
        ({"codec": "int8"}, ("int8", "int8")),
        ({"codec": "int4", "grad_codec": "dense"}, ("int4", "dense")),
        ({"enabled": True, "codec": "fp16"}, ("fp16", "fp16")),
        ({"codec": "dense", "grad_codec": "bf16"}, ("dense", "bf16")),
    ],
)
def test_mp_codec_names(changes, names):
    """``dct.mp.codec`` decides; unset, ``enabled`` means DCT-MP's top-k, as it always has."""
    assert mp_codec_names(with_dct_mp(**changes).dct.mp) == names
