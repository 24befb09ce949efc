"""Whether a checkpoint's ``meta`` fits the run that wants to continue from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dct.checkpoint.meta import FORMAT, check_meta, fingerprint
from dct.checkpoint.store import CheckpointError
from dct.config import RunConfig
from dct.data.sources import ShapedTabularConfig

SOURCE = Path("run/checkpoints/step_00000004/.metadata")


def meta_of(cfg: RunConfig, step: int = 4) -> dict:
    return {"format": FORMAT, "step": step, "fingerprint": fingerprint(cfg), "grid": {}}


def changed(group: str, **changes) -> RunConfig:
    cfg = RunConfig()
    setattr(cfg, group, dataclasses.replace(getattr(cfg, group), **changes))
    return cfg


def test_the_same_model_on_any_grid_or_settings_fits():
    other_run = changed("parallel", mp_size=4, sharding="row")
    other_run.train = dataclasses.replace(other_run.train, lr=0.5, steps=900)
    check_meta(meta_of(RunConfig()), other_run, SOURCE)


@pytest.mark.parametrize(
    "saved, message",
    [
        (changed("model", top_mlp=[32]), "model.top_mlp=[32] there, [64, 32] here"),
        (changed("model", embedding_dim=8, bottom_mlp=[64, 8]), "model.embedding_dim=8 there"),
        (changed("data", cardinalities=[10, 20]), "data.cardinalities=[10, 20] there"),
        (changed("data", num_dense=4), "data.num_dense=4 there, 13 here"),
        (changed("optim", tables="sgd"), "optim.tables=sgd there, rowwise_adagrad here"),
        (changed("optim", name="sgd"), "optim.name=sgd there, adagrad here"),
    ],
)
def test_another_models_checkpoint_names_what_differs(saved, message):
    with pytest.raises(CheckpointError, match=r"was written for another model: .*") as error:
        check_meta(meta_of(saved), RunConfig(), SOURCE)
    assert message in str(error.value) and str(SOURCE) in str(error.value)


def test_a_checkpoint_past_the_end_is_refused():
    with pytest.raises(CheckpointError, match="is at step 400, past train.steps=300"):
        check_meta(meta_of(RunConfig(), step=400), RunConfig(), SOURCE)


@pytest.mark.parametrize("meta", [None, {"format": FORMAT + 1}, {"weights": 1}])
def test_another_programs_checkpoint_is_refused(meta):
    with pytest.raises(CheckpointError, match="is not a dct checkpoint"):
        check_meta(meta, RunConfig(), SOURCE)


def test_an_earlier_versions_checkpoint_says_what_still_reads_it():
    meta = {**meta_of(RunConfig()), "format": FORMAT - 1}
    with pytest.raises(CheckpointError, match="is not a dct checkpoint") as error:
        check_meta(meta, RunConfig(), SOURCE)
    assert f"an earlier version wrote it (format {FORMAT - 1})" in str(error.value)
    assert "dct.export" in str(error.value)


def test_data_preprocessed_with_another_schema_is_refused(monkeypatch):
    import dct.checkpoint.meta

    here = {"name": "tabular", "path": "/data/mine", "schema_fingerprint": "b" * 64}
    monkeypatch.setattr(dct.checkpoint.meta, "data_record", lambda cfg: here)
    meta = {**meta_of(RunConfig()), "data": {"schema_fingerprint": "a" * 64}}
    with pytest.raises(CheckpointError, match="another schema .*aaaaaaaaaaaa there, bbbbbbbbbbbb"):
        check_meta(meta, RunConfig(), SOURCE)
    meta["data"]["schema_fingerprint"] = "b" * 64
    check_meta(meta, RunConfig(), SOURCE)


def tabular(**shape) -> RunConfig:
    """A run on a preprocessed directory of 3 features, shaped as ``with_data_shape`` shapes it."""
    shape = {"num_dense": 2, "cardinalities": [5, 6, 7], **shape}
    data = ShapedTabularConfig(path="/data/mine", **shape)
    return RunConfig(data=data)


@pytest.mark.parametrize(
    "saved, here, message",
    [
        (tabular(valid_size=30), tabular(), "data.valid_size=30 there, None here"),
        (tabular(), tabular(valid_size=30), "data.valid_size=None there, 30 here"),
        (
            tabular(cardinalities=[5, 6], feature_tables=[0, 1, 0]),
            tabular(),
            "data.feature_tables=[0, 1, 0] there, None here",
        ),
        (
            tabular(pooling=["sum", "mean", "sum"]),
            tabular(pooling=["sum", "sum", "sum"]),
            "data.pooling=['sum', 'mean', 'sum'] there, None here",
        ),
    ],
)
def test_another_validation_split_or_feature_layout_is_refused(saved, here, message):
    """Recorded only where not the default, compared whichever side records them."""
    with pytest.raises(CheckpointError, match="was written for another model") as error:
        check_meta(meta_of(saved), here, SOURCE)
    assert message in str(error.value)
    check_meta(meta_of(saved), saved, SOURCE)
