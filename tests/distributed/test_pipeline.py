"""Pipeline stages on gloo ranks against single-process training of the same DLRM.

- Without compression (and with DCT-MP at density 1.0), 2- and 3-stage pipelines with several
  micro-batches report the plain DLRM's per-step losses (1e-5 relative), SGD on the same batches.
- Below density 1.0 they report the losses of a single process that runs the same stages one
  after the other and multiplies each cut's activations by a mask of each sample's ``k``
  largest magnitudes (found by a stable argsort), so gradients pass only where values did.
- Impossible pipelines (more stages than ranks, uneven micro-batches) are refused; bad cut
  names are refused by ``split_model`` (``tests/unit/test_stages.py``).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist

from dct.comm.codec import DENSE
from dct.comm.dct_mp import dct_mp_codecs
from dct.comm.meter import ByteMeter
from dct.config import SyntheticDataConfig
from dct.data.synthetic import SyntheticClicks
from dct.parallel.pipeline import PipelineStage
from models.dlrm import DLRM
from models.stages import split_model
from tests.distributed.spawn import run_ranks

DATA = SyntheticDataConfig(cardinalities=[50, 20, 80, 10, 30])
BATCH, STEPS, LR = 64, 6, 0.1


def build_model() -> DLRM:
    return DLRM(DATA.num_dense, [32, 16, 16], DATA.cardinalities, [32, 16], seed=0)


def batches() -> list:
    data = SyntheticClicks(DATA, seed=0)
    return [data.samples("train", step * BATCH, BATCH) for step in range(STEPS)]


def pipeline_losses(cuts: list[str], microbatches: int, density: float | None) -> dict:
    stages = split_model(build_model(), cuts)
    codecs = DENSE if density is None else dct_mp_codecs(density)
    meter = ByteMeter()
    stage = PipelineStage(stages, dist.get_rank(), dist.group.WORLD, meter, codecs)
    optimizer = torch.optim.SGD(stage.module.parameters(), lr=LR)
    losses = []
    for batch in batches():
        loss = stage.step(batch, microbatches)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(None if loss is None else loss.item())
    return {"losses": losses, "bytes": meter.totals()["mp"]}


def top_k_mask(h: torch.Tensor, density: float) -> torch.Tensor:
    k = max(1, math.ceil(density * h.shape[1]))
    order = torch.argsort(-h.detach().abs(), dim=1, stable=True)[:, :k]
    return torch.zeros_like(h).scatter(1, order, 1.0)


def reference_losses(cuts: list[str], density: float | None) -> list[float]:
    model = build_model()
    stages = split_model(model, cuts)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    losses = []
    for batch in batches():
        if density is None:
            logits = model(batch)
        else:
            x = None
            for stage in stages:
                x = stage(x, batch.dense, batch.sparse)
                if not stage.is_last:
                    x = x * top_k_mask(x, density)
            logits = x
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize(
    "cuts, microbatches, density",
    [
        (["bottom_mlp.1"], 2, None),
        (["bottom_mlp.0", "top_mlp.0"], 4, None),
        (["bottom_mlp.0", "top_mlp.0"], 2, 1.0),
    ],
)
def test_pipeline_trains_as_one_process(cuts, microbatches, density, tmp_path):
    results = run_ranks(
        len(cuts) + 1, pipeline_losses, cuts, microbatches, density, tmp_dir=tmp_path
    )
    assert results[-1]["losses"] == pytest.approx(reference_losses(cuts, None), rel=1e-5)
    assert all(loss is None for r in results[:-1] for loss in r["losses"])


@pytest.mark.parametrize("cuts", [["bottom_mlp.1"], ["bottom_mlp.0", "top_mlp.0"]])
def test_sparse_cuts_train_as_one_process_with_the_same_masks(cuts, tmp_path):
    density = 0.25
    results = run_ranks(len(cuts) + 1, pipeline_losses, cuts, 2, density, tmp_dir=tmp_path)
    reference = reference_losses(cuts, density)
    assert reference != pytest.approx(reference_losses(cuts, None), rel=1e-3)
    assert results[-1]["losses"] == pytest.approx(reference, rel=1e-5)
    # Stage 0 sends k fp32 values and uint8 positions per sample and step, gets k values back.
    width = 16 if cuts == ["bottom_mlp.1"] else 32
    k = math.ceil(density * width)
    assert results[0]["bytes"].sent == STEPS * BATCH * k * (4 + 1)
    assert results[0]["bytes"].dense == STEPS * BATCH * width * 4


def refuse_uneven_microbatches() -> str:
    stage = PipelineStage(split_model(build_model(), []), 0, dist.group.WORLD, ByteMeter())
    with pytest.raises(ValueError, match="does not split into 3 equal micro-batches") as error:
        stage.step(batches()[0], 3)
    with pytest.raises(ValueError, match="2 stages need 2 model-parallel ranks, the group has 1"):
        PipelineStage(split_model(build_model(), ["top_mlp.0"]), 0, dist.group.WORLD, ByteMeter())
    return str(error.value)


def test_impossible_pipelines_are_refused(tmp_path):
    assert "64 samples" in run_ranks(1, refuse_uneven_microbatches, tmp_dir=tmp_path)[0]
