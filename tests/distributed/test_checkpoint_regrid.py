"""A checkpoint written on one grid continues on another as it would have on its own.

The reference is continuing on the grid that wrote the checkpoint (4 ranks, ``mp_size=2``, one
table cut into row blocks). The same checkpoint is loaded by 2 ranks ``mp_size=2``, by one
process, by 4 ranks ``mp_size=4`` with every table cut, and by 2 ranks with whole tables; with
SGD each continues to the same losses and weights (1e-5: the sums are grouped differently).
DCT-DP's residuals handed to a grid with fewer replicas keep the average the replicas owe.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from dct.checkpoint.store import checkpoint_name
from dct.config import RunConfig
from dct.export import export
from dct.parallel.topology import Topology, grid_shape
from dct.train.loop import train
from models.dlrm import DLRM
from tests.distributed.spawn import run_ranks
from tests.distributed.test_checkpoint_resume import CHECKPOINT, STEPS, config

TOLERANCE = 1e-5
SGD = config(mp_size=2)
DCT_DP = config(mp_size=1, dct_dp=True)
# Where the checkpoint continues, by world size: (name, config).
GRIDS = {
    4: [
        (
            "4 ranks mp4, every table cut",
            replace(SGD, parallel=replace(SGD.parallel, mp_size=4, sharding="row")),
        )
    ],
    2: [
        ("2 ranks mp2", SGD),
        (
            "2 ranks mp2, whole tables",
            replace(SGD, parallel=replace(SGD.parallel, sharding="table")),
        ),
    ],
    1: [("1 process", replace(SGD, parallel=replace(SGD.parallel, mp_size=1)))],
}


def until_checkpoint(cfg: RunConfig) -> RunConfig:
    return replace(cfg, train=replace(cfg.train, steps=CHECKPOINT))


def continue_from(cfg: RunConfig, run_dir: Path, resume: Path | None = None) -> dict:
    """Train ``cfg`` on this rank (resuming from ``resume``); what it holds, by global name."""
    if resume is not None:
        cfg = replace(cfg, train=replace(cfg.train, resume=str(resume)))
    topology = Topology(grid_shape(cfg, dist.get_world_size()), "cpu")
    result = train(cfg, topology, torch.device("cpu"), run_dir=run_dir)
    model = result.model
    return {
        "losses": result.losses,
        "dense": {name: p.detach().clone() for name, p in model.dense_named_parameters()},
        "tables": {(s.table, s.start): w.clone() for s, w in model.table_blocks()},
        "dp_states": {name: state.state_dict() for name, state in model.dp_states.items()},
        "dp_rank": topology.dp_rank,
    }


def checkpoint_of(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / checkpoint_name(CHECKPOINT)


def on_writing_grid(root: Path) -> dict:
    """4 ranks: write both checkpoints, continue the SGD one here and on the other 4-rank grid."""
    written = continue_from(until_checkpoint(SGD), root / "sgd")
    continue_from(until_checkpoint(DCT_DP), root / "dct_dp")
    path = checkpoint_of(root / "sgd")
    return {
        "written": written,
        "reference": continue_from(SGD, root / "reference", path),
        "dct_dp": continue_from(until_checkpoint(DCT_DP), root / "dct_dp"),
        **{name: continue_from(cfg, root / name, path) for name, cfg in GRIDS[4]},
    }


def on_other_grid(root: Path, world: int) -> dict:
    path = checkpoint_of(root / "sgd")
    results = {name: continue_from(cfg, root / name, path) for name, cfg in GRIDS[world]}
    if world == 2:  # the DCT-DP checkpoint of 4 replicas, loaded (not trained on) by 2
        dct_dp = checkpoint_of(root / "dct_dp")
        results["dct_dp"] = continue_from(until_checkpoint(DCT_DP), root / "dct_dp2", dct_dp)
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Every rank's results by world size, and the root the checkpoints were written under."""
    root = tmp_path_factory.mktemp("regrid")
    results = {"root": root, 4: run_ranks(4, on_writing_grid, root, tmp_dir=root)}
    for world in (2, 1):
        results[world] = run_ranks(world, on_other_grid, root, world, tmp_dir=root)
    return results


def whole_model(ranks: list[dict]) -> dict[str, torch.Tensor]:
    """Every parameter by its ``DLRM`` name, tables assembled from replica 0's row blocks."""
    model = dict(ranks[0]["dense"])
    blocks: dict[int, list] = {}
    for result in ranks:
        if result["dp_rank"] == 0:
            for (table, start), weights in result["tables"].items():
                blocks.setdefault(table, []).append((start, weights))
    for table, parts in blocks.items():
        ordered = [weights for _, weights in sorted(parts, key=lambda part: part[0])]
        model[f"sparse_arch.tables.{table}.weight"] = torch.cat(ordered)
    return model


@pytest.mark.parametrize("world, name", [(w, n) for w, grids in GRIDS.items() for n, _ in grids])
def test_checkpoint_continues_on_other_grids(runs, world, name):
    reference_ranks = [result["reference"] for result in runs[4]]
    assert len(reference_ranks[0]["losses"]) == STEPS
    assert (3, 500) in reference_ranks[1]["tables"]  # table 3 is cut on the writing grid
    ranks = [result[name] for result in runs[world]]
    torch.testing.assert_close(
        torch.tensor(ranks[0]["losses"]),
        torch.tensor(reference_ranks[0]["losses"]),
        rtol=TOLERANCE,
        atol=0.0,
    )
    continued, reference = whole_model(ranks), whole_model(reference_ranks)
    assert continued.keys() == reference.keys()
    for key, expected in reference.items():
        torch.testing.assert_close(continued[key], expected, rtol=0.0, atol=TOLERANCE, msg=key)


def test_export_is_the_checkpoints_model(runs, tmp_path):
    """One process assembles the 4-rank checkpoint's blocks into a ``DLRM`` state dict."""
    out = tmp_path / "model.pt"
    meta = export(checkpoint_of(runs["root"] / "sgd"), out)
    assert meta["step"] == CHECKPOINT
    state = torch.load(out, weights_only=True)
    at_checkpoint = whole_model([result["written"] for result in runs[4]])
    assert state.keys() == at_checkpoint.keys()
    for key, tensor in at_checkpoint.items():
        assert torch.equal(state[key], tensor), key
    cfg = SGD
    model = DLRM(
        cfg.data.num_dense, cfg.model.bottom_mlp, cfg.data.cardinalities, cfg.model.top_mlp, 0
    )
    model.load_state_dict(state)


def test_dct_dp_residuals_keep_what_the_replicas_owe(runs):
    """4 replicas (DCT-DP on tables and tower) hand their residuals to 2: the replicas' average
    residual, the gradient still owed to the model, is unchanged."""
    old = [result["dct_dp"] for result in runs[4]]
    new = [result["dct_dp"] for result in runs[2]]

    def owed_tower(ranks: list[dict]) -> dict[str, torch.Tensor]:
        layers = [r["dp_states"]["tower"]["layers"] for r in ranks]
        return {
            name: sum(state[name]["residual"] for state in layers) / len(ranks)
            for name in layers[0]
        }

    def owed_tables(ranks: list[dict]) -> torch.Tensor:
        sizes = DCT_DP.data.cardinalities
        owed = torch.zeros(sum(sizes), DCT_DP.model.embedding_dim)
        bases = [0, *torch.tensor(sizes).cumsum(0).tolist()]
        for result in ranks:
            for table, residual in enumerate(result["dp_states"]["tables"]["residuals"]):
                if residual["rows"] is not None:
                    owed.index_add_(0, residual["rows"] + bases[table], residual["values"])
        return owed / len(ranks)

    old_tower, new_tower = owed_tower(old), owed_tower(new)
    assert any(t.abs().sum() > 0 for t in old_tower.values())
    for name in old_tower:
        torch.testing.assert_close(new_tower[name], old_tower[name], rtol=1e-6, atol=1e-9)
    assert owed_tables(old).abs().sum() > 0
    torch.testing.assert_close(owed_tables(new), owed_tables(old), rtol=1e-6, atol=1e-9)
