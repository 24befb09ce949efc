"""Evaluation scores every row of the eval split, once, on any grid.

The eval splits here are not a whole number of global batches of 32: 70 rows (two batches and
6 rows) and 5 rows (less than one batch, which once was refused). Evaluation pads the last batch
with the rows that follow and leaves the padding out of every metric. The reference is the
run's own final model, exported from its last checkpoint (``dct.export``) into the
single-process model (``models.zoo``; DLRM, DLRM-DCNv2 or DeepFM), predicting exactly the
split's rows in one process, scored by scikit-learn's ``roc_auc_score`` and ``log_loss``
(normalized entropy and calibration from them and the labels, here; grouped AUC group by
group, the rows in 7 groups). The runs are
``train.epochs=1`` over the 135 of 150 training rows the validation split leaves, so the loop
is also held to the step count epochs make, ``ceil(135 / 32) = 5``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from sklearn.metrics import log_loss, roc_auc_score

from dct.config import ParallelConfig, RunConfig, TabularDataConfig, validate
from dct.data.sources import with_data_shape
from dct.data.tabular import TabularClicks
from dct.data.tabular_format import GROUPS, MANIFEST
from dct.export import export
from dct.parallel.topology import Topology, grid_shape
from dct.train.loop import train
from models.feature_tables import FeatureTables
from models.zoo import recommender
from tests.distributed.spawn import run_ranks
from tests.distributed.test_golden import small_config
from tests.unit.test_eval_metrics import sklearn_gauc
from tests.unit.test_tabular_reader import make_tabular

TRAIN_ROWS, BATCH, STEPS = 150, 32, 5
PARALLEL = {
    "embedding": ParallelConfig(mp_size=2, sharding="row"),
    "pipeline": ParallelConfig(mp_mode="pipeline", cuts=["bottom_mlp.1"], microbatches=2),
}


def eval_config(path: Path, mode: str, model: str = "dlrm") -> RunConfig:
    """``test_golden``'s small ``model`` on ``path`` for one epoch, evaluated and checkpointed
    at its last step, every eval row scored (``data.eval_size=null``)."""
    cfg = small_config(1, "sgd", model=model)
    cfg.data = TabularDataConfig(path=str(path))
    cfg.parallel = PARALLEL[mode]
    cfg.train = dataclasses.replace(
        cfg.train,
        steps=None,
        epochs=1,
        batch_size=BATCH,
        lr=0.05,
        eval_every=STEPS,
        log_every=STEPS,
        checkpoint_every=STEPS,
    )
    validate(cfg, world_size=2)
    return with_data_shape(cfg)


def train_rank(cfg: RunConfig, run_dir: Path) -> dict:
    topology = Topology(grid_shape(cfg, dist.get_world_size()), "cpu")
    result = train(cfg, topology, torch.device("cpu"), run_dir=run_dir)
    return {"evaluation": result.evaluation, "steps": len(result.losses)}


def reference_scores(cfg: RunConfig, checkpoint: Path, model_file: Path) -> dict[str, float]:
    """The checkpointed model's predictions of every eval row, scored by scikit-learn."""
    export(checkpoint, model_file)
    data = cfg.data
    features = FeatureTables.one_per_feature(data.cardinalities)
    # The weights come from the checkpoint.
    model = recommender(cfg.model, data.num_dense, features, seed=cfg.seed + 1)
    model.load_state_dict(torch.load(model_file, weights_only=True))
    batch = TabularClicks(Path(data.path)).samples("eval", 0, data.eval_size)
    with torch.no_grad():
        prob = torch.sigmoid(model.eval()(batch)).double().numpy()
    label = batch.labels.double().numpy()
    assert 0 < label.sum() < len(label), "both classes are needed for an AUC"
    group = batch.groups.numpy()
    logloss, rate = log_loss(label, prob, labels=[0.0, 1.0]), label.mean()
    return {
        "auc": roc_auc_score(label, prob),
        "logloss": logloss,
        "accuracy": float(((prob >= 0.5) == (label >= 0.5)).mean()),
        "ne": logloss / -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate)),
        "calibration": prob.sum() / label.sum(),
        "gauc": sklearn_gauc(group, label, prob),
    }


def with_groups(path: Path, seed: int = 0) -> None:
    """Each row of both splits in one of 7 groups with ids as large as hashes, as a schema's
    ``group`` column would make them (``dct.data.tabular_format``)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(-(2**62), 2**62, 7)
    manifest = json.loads((path / MANIFEST).read_text())
    for split, info in manifest["splits"].items():
        ids[rng.integers(0, 7, info["rows"])].astype("<i8").tofile(path / split / GROUPS)
    manifest["group_column"] = "user"
    (path / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "mode, eval_rows, model",
    [
        ("embedding", 70, "dlrm"),
        ("pipeline", 70, "dlrm"),
        ("embedding", 5, "dlrm"),
        ("embedding", 70, "dlrm_dcn"),
        ("pipeline", 70, "deepfm"),
    ],
    ids=[
        "hybrid-mp2-70rows",
        "pipeline-2stages-70rows",
        "hybrid-mp2-5rows",
        "dlrm_dcn-hybrid-mp2-70rows",
        "deepfm-pipeline-2stages-70rows",
    ],
)
def test_every_eval_row_is_scored_once(mode, eval_rows, model, tmp_path):
    """Embedding mode: 2 MP ranks, each 16 rows of a batch (with 5 rows, rank 1's are all
    padding); pipeline mode: 2 stages, the last one predicting all 32 rows; each model's
    export loads into the model ``models.zoo`` builds."""
    make_tabular(tmp_path / "data", TRAIN_ROWS, eval_rows)
    with_groups(tmp_path / "data")
    cfg = eval_config(tmp_path / "data", mode, model)
    assert (cfg.data.eval_size, cfg.train.steps) == (eval_rows, STEPS)
    ranks = run_ranks(2, train_rank, cfg, tmp_path / "run", tmp_dir=tmp_path)

    checkpoint = tmp_path / "run" / "checkpoints" / f"step_{STEPS:08d}"
    expected = reference_scores(cfg, checkpoint, tmp_path / "model.pt")
    for rank in ranks:
        result = rank["evaluation"]
        assert rank["steps"] == STEPS
        assert result.num_samples == eval_rows
        assert result.auc == pytest.approx(expected["auc"], abs=1e-6)
        assert result.logloss == pytest.approx(expected["logloss"], rel=1e-5)
        assert result.accuracy == expected["accuracy"]
        assert result.ne == pytest.approx(expected["ne"], rel=1e-5)
        assert result.calibration == pytest.approx(expected["calibration"], rel=1e-5)
        assert result.gauc == pytest.approx(expected["gauc"], abs=1e-6)
