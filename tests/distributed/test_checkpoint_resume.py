"""A run stopped at a checkpoint and resumed equals the run that was never stopped.

The reference is the uninterrupted run on the same ranks. The interrupted one trains to step
``k`` (a checkpoint, and an evaluation step, so the two runs evaluate at the same steps), ends;
a fresh ``train`` call in the same run directory resumes from that checkpoint. Everything that
shapes the later steps must come back from the checkpoint: the tables, both optimizers' state,
DCT-DP's residuals and thresholds, DCT-MP's and de-duplication's counters, the random state,
the byte meter and the losses so far.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from dct.config import DCTConfig, DCTDPConfig, DCTMPConfig, RunConfig
from dct.embedding.fused import fbgemm_available
from dct.parallel.topology import Topology, grid_shape
from dct.train.compression_report import DP_HOOKS
from dct.train.loop import train
from dct.train.summary import summary_metrics
from tests.distributed.spawn import run_ranks
from tests.distributed.test_golden import small_config

STEPS, CHECKPOINT = 12, 6
# Metrics that measure the machine, not the training.
MEASURED = (
    "samples_per_sec",
    "step_time_median_s",
    "read_time_median_s",
    "peak_rss_bytes",
    "rss_over_state",
    *(f"dp_{hook}_{cost}_ms_per_step" for hook in DP_HOOKS for cost in ("select", "pack")),
)


def config(
    mp_size: int = 1,
    optim: str = "sgd",
    tables: str = "sgd",
    mode: str = "embedding",
    sharding: str = "auto",
    kernel: str = "torch",
    dct_dp: bool = False,
    upkeep: str = "guard",
    dct_mp: bool = False,
    dedup_int4: bool = False,
    model: str = "dlrm",
) -> RunConfig:
    """The golden test's small model; table 3 (1,000 of 1,667 rows) is cut into row blocks by
    ``auto`` on 2 MP ranks. ``dedup_int4``: the de-duplicated all-to-all in int4, gradients
    rounded stochastically (so the random state must come back too). ``model``: its name."""
    cfg = small_config(mp_size, optim, tables, sharding, kernel, model)
    return replace(
        cfg,
        seed=5,
        parallel=replace(
            cfg.parallel, mp_mode=mode, cuts=["bottom_mlp.1"] if mode == "pipeline" else []
        ),
        train=replace(
            cfg.train, steps=STEPS, eval_every=CHECKPOINT, log_every=3, checkpoint_every=CHECKPOINT
        ),
        dct=DCTConfig(
            dp=DCTDPConfig(
                enabled=dct_dp, density=0.05, update_every=4, table_residual_rows=8, upkeep=upkeep
            ),
            mp=DCTMPConfig(enabled=dct_mp, density=0.25)
            if not dedup_int4
            else DCTMPConfig(codec="int4", dedup=True, grad_rounding="stochastic"),
        ),
    )


def run(cfg: RunConfig, run_dir: Path) -> dict:
    """Train on this rank; its losses, metrics and every tensor it holds, by global name, and
    its step times (measured, or restored from a checkpoint's record)."""
    world = dist.get_world_size()
    topology = Topology(grid_shape(cfg, world), "cpu")
    result = train(cfg, topology, torch.device("cpu"), run_dir=run_dir)
    model = result.model
    metrics = summary_metrics(result, cfg, topology)
    dp_states = {name: state.state_dict() for name, state in model.dp_states.items()}
    return {
        "losses": result.losses,
        "metrics": {k: v for k, v in metrics.items() if k not in MEASURED},
        "dense": {name: p.detach().clone() for name, p in model.dense_named_parameters()},
        "tables": {(s.table, s.start, s.stop): w.clone() for s, w in model.table_blocks()},
        "dp_states": dp_states,
        "dp_rank": topology.dp_rank,
        "step_times": result.step_times,
    }


def stop_and_resume(cases: dict[str, RunConfig], root: str) -> dict[str, dict]:
    """Per case: the uninterrupted run, the run interrupted at the checkpoint, and that run resumed.
    The cases share one world of processes (starting one costs seconds)."""
    results = {}
    for name, cfg in cases.items():
        case_dir = Path(root) / name
        reference = run(cfg, case_dir / "reference")
        interrupted = run(
            replace(cfg, train=replace(cfg.train, steps=CHECKPOINT)), case_dir / "interrupted"
        )
        resumed = run(cfg, case_dir / "interrupted")
        results[name] = {"reference": reference, "interrupted": interrupted, "resumed": resumed}
    return results


def assert_equal(a: object, b: object, exact: bool) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_equal(a[key], b[key], exact)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_equal(x, y, exact)
    elif isinstance(a, torch.Tensor):
        if exact:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    elif isinstance(a, float) and not exact:
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9)
    else:
        assert a == b


def assert_resumed_equal(ranks: list[dict], cases: dict[str, RunConfig]) -> None:
    """Every rank's resumed run of every case equals its uninterrupted one (``stop_and_resume``'s
    results): bitwise with SGD, within 1e-6 with Adagrad; DCT-DP's residuals are really there."""
    for name, cfg in cases.items():
        exact = cfg.optim.name == cfg.optim.tables == "sgd"
        for result in ranks:
            reference, resumed = (dict(result[name][run]) for run in ("reference", "resumed"))
            # The interrupted run's step times come back from the checkpoint's record: a run that
            # started over instead would train to the same numbers but measure its own times.
            interrupted_times = result[name]["interrupted"]["step_times"]
            assert resumed.pop("step_times")[:CHECKPOINT] == interrupted_times, name
            del reference["step_times"]
            assert len(resumed["losses"]) == STEPS, name
            assert_equal(resumed, reference, exact)
        if cfg.dct.dp.enabled:  # the residuals compared above are really there
            tables = [r[name]["resumed"]["dp_states"].get("tables") for r in ranks]
            assert any(
                r["values"] is not None and r["values"].abs().sum() > 0
                for state in tables
                if state is not None
                for r in state["residuals"]
            ), name


# (world size, case) -> config; SGD cases must resume bitwise, Adagrad ones within 1e-6.
CASES = {
    2: {
        "mp2": config(mp_size=2),
        "dp2-dct_dp": config(mp_size=1, dct_dp=True),
        "dp2-dct_dp-track": config(mp_size=1, dct_dp=True, upkeep="track"),
        "mp2-dct_mp": config(mp_size=2, dct_mp=True),
        "mp2-dedup-int4": config(mp_size=2, dedup_int4=True),
        "pipeline-dct_mp": config(mode="pipeline", mp_size=2, dct_mp=True),
        "adagrad": config(mp_size=2, optim="adagrad", tables="rowwise_adagrad"),
        "fbgemm-adagrad": config(mp_size=2, tables="adagrad", kernel="fbgemm"),
        "dlrm_dcn-mp2-dct_mp": config(mp_size=2, dct_mp=True, model="dlrm_dcn"),
        "deepfm-mp2-adagrad": config(
            mp_size=2, optim="adagrad", tables="rowwise_adagrad", model="deepfm"
        ),
    },
    4: {
        "mp2-row-dct_dp": config(mp_size=2, dct_dp=True, sharding="row"),
        "pipeline-dct_dp": config(mode="pipeline", mp_size=2, dct_dp=True),
        "deepfm-pipeline-dct_dp": config(mode="pipeline", mp_size=2, dct_dp=True, model="deepfm"),
        "dlrm_dcn-pipeline-dct_dp": config(
            mode="pipeline", mp_size=2, dct_dp=True, model="dlrm_dcn"
        ),
    },
}


@pytest.mark.parametrize("world_size", sorted(CASES))
def test_resumed_run_equals_uninterrupted(world_size, tmp_path):
    """With DCT-DP (tables and tower or stage), DCT-MP, in pipeline mode, with FBGEMM's kernel,
    with each model."""
    cases = dict(CASES[world_size])
    if not fbgemm_available():  # FBGEMM is an extra: pip install -e '.[fbgemm]'
        cases = {k: v for k, v in cases.items() if v.model.table_kernel != "fbgemm"}
    ranks = run_ranks(world_size, stop_and_resume, cases, str(tmp_path), tmp_dir=tmp_path)
    assert_resumed_equal(ranks, cases)
