"""DCT-DP training the synthetic DLRM on 2 ranks against the dense run on the same seed and batches.

The claim under test is DCT's: no loss of accuracy at 99 % and 99.5 % sparsity, with the DP bytes
cut by about ``1 / density``. On this short horizon the compressed run may even end *above* the
dense one (Adagrad with a tiny ``eps`` turns the dense run's small, noisy table-gradient entries
into full-size steps; error feedback holds them back until they add up), so the accuracy check
is one-sided: a loss beyond the tolerance fails, a gain does not.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist

from dct.config import RunConfig
from dct.parallel.topology import GridShape, Topology
from dct.train.loop import summary_metrics, train
from tests.distributed.spawn import run_ranks

AUC_TOLERANCE = 0.005


def dense_and_compressed(densities: list[float], steps: int) -> dict[str, dict]:
    base = RunConfig()
    base.train.steps, base.train.eval_every = steps, steps
    base.output.progress_bar = False
    topology = Topology(GridShape(dist.get_world_size(), 1, len(base.data.cardinalities)), "cpu")
    runs = {"dense": base}
    for density in densities:
        cfg = copy.deepcopy(base)
        cfg.dct.dp.enabled, cfg.dct.dp.density, cfg.dct.dp.value_dtype = True, density, "float16"
        runs[str(density)] = cfg
    return {
        name: summary_metrics(train(cfg, topology, torch.device("cpu")), cfg, topology)
        for name, cfg in runs.items()
    }


@pytest.fixture(scope="module")
def metrics(tmp_path_factory) -> dict[str, dict]:
    return run_ranks(
        2, dense_and_compressed, [0.01, 0.005], 100, tmp_dir=tmp_path_factory.mktemp("e2e")
    )[0]


@pytest.mark.parametrize("density", [0.01, 0.005])
def test_compressed_training_loses_no_auc_against_dense(metrics, density):
    dense, dct = metrics["dense"], metrics[str(density)]
    assert dct["auc"] >= dense["auc"] - AUC_TOLERANCE, (dct["auc"], dense["auc"])
    assert dct["logloss"] <= dense["logloss"] + AUC_TOLERANCE


@pytest.mark.parametrize("density", [0.01, 0.005])
def test_dp_bytes_shrink_with_the_density(metrics, density):
    dense, dct = metrics["dense"], metrics[str(density)]
    assert dense["dp_ratio"] == 1.0
    assert dct["dp_bytes_dense"] == dense["dp_bytes_dense"]
    assert dct["dp_ratio"] >= 0.5 / density
    assert dct["dp_achieved_density"] <= 1.5 * density
