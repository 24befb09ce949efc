"""DLRM-DCNv2 and DeepFM trained on a grid equal the same model trained in one process.

The wrappers, DCT-DP and DCT-MP hold no model-specific code: these are the golden comparisons
of ``test_golden`` (its independent reference loop and small config) and ``test_dct_mp_training``
(DCT-MP as a masked single process) with ``model.name`` changed. Each model's own forward and
backward are held to its formula in ``tests/unit/test_model_zoo.py``; checkpoints resume
(``test_checkpoint_resume``) and export (``test_eval_rows``) with these models too.
"""

from __future__ import annotations

import pytest
import torch

from dct.config import DCTDPConfig, ParallelConfig
from tests.distributed.spawn import run_ranks
from tests.distributed.test_dct_mp_training import masked_config, masked_reference, train_tables
from tests.distributed.test_golden import (
    ATOL,
    assert_same_training,
    reference_run,
    small_config,
    train_pipeline_rank,
    train_rank,
)

MODELS = ["dlrm_dcn", "deepfm"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    "world_size, mp_size, sharding, dct_dp",
    [(2, 2, "table", False), (2, 2, "row", False), (4, 4, "table", False), (4, 2, "row", True)],
)
def test_hybrid_training_equals_single_process(
    model, world_size, mp_size, sharding, dct_dp, tmp_path
):
    """SGD, whole tables and row blocks, on 2 and 4 ranks; replicated shards with DCT-DP at
    density 1.0 on tower and tables (every nonzero entry sent: exact)."""
    cfg = small_config(mp_size, "sgd", sharding=sharding, model=model)
    cfg.dct.dp = DCTDPConfig(enabled=dct_dp, density=1.0)
    reference = reference_run(cfg)
    for result in run_ranks(world_size, train_rank, cfg, tmp_dir=tmp_path):
        assert_same_training(result, reference)
        for (table, start, stop), weight in result["tables"].items():
            expected = reference["tables"][table][start:stop]
            torch.testing.assert_close(weight, expected, rtol=0.0, atol=ATOL)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    "replicas, cuts, microbatches, dct_dp",
    [(1, ["bottom_mlp.1", "top_mlp.0"], 4, False), (2, ["top_mlp.0"], 2, True)],
)
def test_pipeline_training_equals_single_process(
    model, replicas, cuts, microbatches, dct_dp, tmp_path
):
    """Three stages (the tables and the interaction in the middle one), and two replicas of
    two stages averaged by DCT-DP at density 1.0; DeepFM's cut after its first deep layer
    carries the FM's logit across."""
    cfg = small_config(1, "sgd", model=model)
    cfg.parallel = ParallelConfig(mp_mode="pipeline", cuts=cuts, microbatches=microbatches)
    cfg.dct.dp = DCTDPConfig(enabled=dct_dp, density=1.0)
    reference = reference_run(cfg)
    world = replicas * (len(cuts) + 1)
    for result in run_ranks(world, train_pipeline_rank, cfg, tmp_dir=tmp_path):
        assert_same_training(result, reference)


@pytest.mark.parametrize("model", MODELS)
def test_dct_mp_trains_as_a_masked_single_process(model, tmp_path):
    """DCT-MP at density 0.25 on the embedding all-to-all: the single process keeping each
    sample's and table's top quarter of pooled values, its gradients only there."""
    cfg = masked_config(2, 0.25, model=model)
    reference = masked_reference(cfg)
    for result in run_ranks(2, train_tables, cfg, tmp_dir=tmp_path):
        torch.testing.assert_close(
            torch.tensor(result["losses"]), torch.tensor(reference["losses"]), rtol=1e-5, atol=0
        )
        for table, weight in result["tables"].items():
            torch.testing.assert_close(weight, reference["tables"][table], rtol=0, atol=1e-5)
