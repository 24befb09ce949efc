"""Checkpoints of runs on a ``dct-preprocess`` directory: resumed, and continued on another grid.

The synthetic tests' comparisons (``test_checkpoint_resume``, ``test_checkpoint_regrid``) on
``test_golden_tabular``'s data: multi-valued features with empty and long bags, looked up in row
blocks on several MP ranks, and a train split shorter than the run, so the checkpoint (step 6,
192 rows in) falls after the first wrap-around and the resumed run must read on from row 42.

- Resume: stopped at the checkpoint and resumed equals the uninterrupted run on the same ranks,
  bitwise (SGD): losses, metrics, every weight, DCT-DP's residuals and thresholds, and the
  random state of the stochastically rounded de-duplicated all-to-all.
- Regrid: a checkpoint written by 2 ranks (``mp_size=2``, every table in row blocks) continues
  on 4 ranks (2 replicas of the same cut, or 4 MP ranks holding whole tables) and on one
  process as it does on the grid that wrote it (1e-5: sums grouped differently).

Both also with ``test_golden_tabular``'s shared tables and mean-pooled features (``SHARED``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dct.config import RunConfig
from tests.distributed.spawn import run_ranks
from tests.distributed.test_checkpoint_regrid import (
    TOLERANCE,
    checkpoint_of,
    continue_from,
    until_checkpoint,
    whole_model,
)
from tests.distributed.test_checkpoint_resume import (
    STEPS,
    assert_resumed_equal,
    config,
    stop_and_resume,
)
from tests.distributed.test_golden_tabular import EVAL_ROWS, SHARED, TRAIN_ROWS, on_tabular
from tests.unit.test_tabular_reader import TABLES, make_tabular

LAYOUTS = {"own": TABLES, "shared": SHARED}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def data(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tabular") / "data"
    make_tabular(path, TRAIN_ROWS, EVAL_ROWS, num_dense=3, tables=LAYOUTS[request.param])
    return path


# (world size, case) -> config, all SGD: every case resumes bitwise. The 4-rank case sends the
# tower's gradients through DCT-DP: DDP's plain all-reduce over more than 2 ranks sums the first
# step after a resume in another order (its bucket is rebuilt after every process's first step).
CASES = {
    2: {
        "mp2-row": config(mp_size=2, sharding="row"),
        "mp2-table-dedup-int4": config(mp_size=2, sharding="table", dedup_int4=True),
    },
    4: {"mp2-row-dct_dp": config(mp_size=2, sharding="row", dct_dp=True)},
}


@pytest.mark.parametrize("world_size", sorted(CASES))
def test_resumed_run_equals_uninterrupted(world_size, data, tmp_path):
    """Row blocks of every table on 2 MP ranks (each rank looks up part of every bag), also
    with 2 replicas and DCT-DP (residuals on tables and tower); whole tables with the
    de-duplicated all-to-all in int4, gradients rounded stochastically (the random state)."""
    cases = {name: on_tabular(cfg, data) for name, cfg in CASES[world_size].items()}
    ranks = run_ranks(world_size, stop_and_resume, cases, str(tmp_path), tmp_dir=tmp_path)
    assert_resumed_equal(ranks, cases)
    for name, cfg in cases.items():
        if cfg.parallel.sharding == "row":  # every table cut, the multi-valued ones included
            cut = {t for t, start, _ in ranks[1][name]["resumed"]["tables"] if start > 0}
            assert cut == set(range(len(cfg.data.cardinalities))), name


def write_and_continue(sgd: RunConfig, root: Path) -> dict:
    """The writing grid: train to the checkpoint, then continue from it here (the reference)."""
    continue_from(until_checkpoint(sgd), root / "sgd")
    return {"reference": continue_from(sgd, root / "reference", checkpoint_of(root / "sgd"))}


def continue_elsewhere(grids: dict[str, RunConfig], root: Path) -> dict:
    path = checkpoint_of(root / "sgd")
    return {name: continue_from(cfg, root / name, path) for name, cfg in grids.items()}


def test_checkpoint_continues_on_other_grids(data, tmp_path):
    sgd = on_tabular(config(mp_size=2, sharding="row"), data)
    # Whole tables on 4 MP ranks need 4 tables; the shared layout's 3 are cut in 4 instead.
    whole = len(sgd.data.cardinalities) >= 4
    grids = {
        4: {
            "4 ranks mp2": sgd,
            "4 ranks mp4": replace(
                sgd, parallel=replace(sgd.parallel, mp_size=4, sharding="table" if whole else "row")
            ),
        },
        1: {"1 process": replace(sgd, parallel=replace(sgd.parallel, mp_size=1))},
    }
    written = run_ranks(2, write_and_continue, sgd, tmp_path, tmp_dir=tmp_path)
    reference_ranks = [result["reference"] for result in written]
    assert len(reference_ranks[0]["losses"]) == STEPS
    # Every table is cut on the writing grid, the multi-valued ones included.
    tables = set(range(len(sgd.data.cardinalities)))
    assert {t for t, start in reference_ranks[1]["tables"] if start > 0} == tables
    reference = whole_model(reference_ranks)
    for world, cfgs in grids.items():
        continued = run_ranks(world, continue_elsewhere, cfgs, tmp_path, tmp_dir=tmp_path)
        for name in cfgs:
            ranks = [result[name] for result in continued]
            torch.testing.assert_close(
                torch.tensor(ranks[0]["losses"]),
                torch.tensor(reference_ranks[0]["losses"]),
                rtol=TOLERANCE,
                atol=0.0,
                msg=name,
            )
            model = whole_model(ranks)
            assert model.keys() == reference.keys(), name
            for key, expected in reference.items():
                torch.testing.assert_close(
                    model[key], expected, rtol=0.0, atol=TOLERANCE, msg=f"{name}: {key}"
                )
