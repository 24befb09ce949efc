"""DCT-DP training the synthetic DLRM on 2 ranks against the dense run on the same seed and batches.

What DCT-DP promises a run: once compression starts (after the exact warm-up), each part's DP
bytes (table replicas' row exchange, dense tower's all-reduce) cut by about ``1 / density``
against what the uncompressed exchange of the same data hands over, and each hook sending its
target density, within the guard's band, in every logging interval. Whether that costs accuracy
is the fidelity harness's question (``benchmarks/fidelity.py``: paired runs over seeds at a
plateaued horizon), not a test's.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist

from dct.config import RunConfig
from dct.parallel.topology import GridShape, Topology
from dct.train.loop import train
from dct.train.summary import summary_metrics
from tests.distributed.spawn import run_ranks


class Recorder:
    """A metric sink that keeps every logging interval's scalars."""

    def __init__(self) -> None:
        self.intervals: list[tuple[int, dict[str, float]]] = []

    def write(self, step: int, scalars) -> None:
        self.intervals.append((step, dict(scalars)))

    def close(self) -> None:
        pass


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
    results = {}
    for name, cfg in runs.items():
        recorder = Recorder()
        result = train(cfg, topology, torch.device("cpu"), [recorder])
        results[name] = {
            **summary_metrics(result, cfg, topology),
            "intervals": [s for step, s in recorder.intervals if "train/loss" in s and step > 10],
        }
    return results


@pytest.fixture(scope="module")
def metrics(tmp_path_factory) -> dict[str, dict]:
    return run_ranks(
        2, dense_and_compressed, [0.01, 0.005], 100, tmp_dir=tmp_path_factory.mktemp("e2e")
    )[0]


@pytest.mark.parametrize("density", [0.01, 0.005])
def test_every_hook_sends_its_density_in_every_interval(metrics, density):
    dct = metrics[str(density)]
    for hook in ("tables", "tower"):
        assert dct[f"dp_{hook}_intervals_outside_band"] == 0
        assert density / 1.5 <= dct[f"dp_{hook}_achieved_density"] <= 1.5 * density
        assert dct[f"dp_{hook}_estimates_per_1k_steps"] > 0
    assert metrics["dense"]["dp_tower_achieved_density"] is None


@pytest.mark.parametrize("density", [0.01, 0.005])
def test_dp_bytes_shrink_with_the_density(metrics, density):
    dense, dct = metrics["dense"], metrics[str(density)]
    for part in ("dp", "dp_tables", "dp_tower"):
        assert dense[f"{part}_ratio"] == 1.0
        assert dct[f"{part}_bytes_dense"] == dense[f"{part}_bytes_dense"] > 0
        assert all(s[f"bytes/{part}_ratio"] >= 0.5 / density for s in dct["intervals"])
    assert density / 1.5 <= dct["dp_achieved_density"] <= 1.5 * density
