"""DCT-DP state handed to another grid: the replicas' average residual is kept exactly."""

from __future__ import annotations

import pytest
import torch

from dct.checkpoint.regrid import (
    global_table_state,
    local_table_state,
    owed_mass,
    regrid_dense,
    regrid_tables,
)
from dct.parallel.sharding import Shard

COUNTERS = {"entries": 5, "entries_sent": 1}


def dense_state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "step": 7,
        "layers": {
            name: {
                "residual": torch.randn(shape, generator=g),
                "threshold": 0.1 * (seed + 1),
                "window": {"sent": 3, "steps": 2},
            }
            for name, shape in (("a.weight", (4, 3)), ("a.bias", (4,)))
        },
        "counters": dict(COUNTERS),
    }


def owed_dense(states: list[dict]) -> dict[str, torch.Tensor]:
    names = states[0]["layers"]
    return {n: sum(s["layers"][n]["residual"] for s in states) / len(states) for n in names}


@pytest.mark.parametrize("old, new", [(4, 2), (4, 1), (2, 4), (3, 2)])
def test_dense_residuals_keep_their_average(old, new):
    states = [dense_state(i) for i in range(old)]
    handed = [regrid_dense(states, j, new) for j in range(new)]
    for j, state in enumerate(handed):  # thresholds and counters of old replica j % old
        assert (
            state["layers"]["a.weight"]["threshold"]
            == states[j % old]["layers"]["a.weight"]["threshold"]
        )
        assert state["counters"] == COUNTERS and state["step"] == 7
    with_residual = [
        s for s in handed if all(v["residual"] is not None for v in s["layers"].values())
    ]
    after = {
        n: sum(s["layers"][n]["residual"] for s in with_residual) / new for n in states[0]["layers"]
    }
    for name, owed in owed_dense(states).items():
        torch.testing.assert_close(after[name], owed)


def test_same_replica_count_hands_each_its_own():
    states = [dense_state(i) for i in range(2)]
    for j in range(2):
        for name, layer in regrid_dense(states, j, 2)["layers"].items():
            assert torch.equal(layer["residual"], states[j]["layers"][name]["residual"])


def table_state(rows: dict[int, list[int]], shards: list[Shard], seed: int) -> dict:
    """A table state holding residual ``rows[table]`` (table rows) of each shard."""
    g = torch.Generator().manual_seed(seed)
    residuals = []
    for shard in shards:
        mine = torch.tensor([r for r in rows.get(shard.table, []) if shard.start <= r < shard.stop])
        residuals.append(
            {"rows": mine - shard.start, "values": torch.randn(len(mine), 2, generator=g)}
            if len(mine)
            else {"rows": None, "values": None}
        )
    names = [f"tables.{s.table}" + ("" if s.whole else f".rows{s.start}") for s in shards]
    dp = {
        "step": 9,
        "layers": {
            n: {"residual": None, "threshold": 0.5, "window": {"sent": 0, "steps": 0}}
            for n in names
        },
        "counters": dict(COUNTERS),
    }
    return global_table_state({"dp": dp, "residuals": residuals, "flushed_rows": 0}, shards)


def owed_rows(states: list[dict], replicas: int, rows: int = 10) -> torch.Tensor:
    owed = torch.zeros(2, rows, 2)  # tables 0 and 1, 10 rows each
    for state in states:
        for part in state["residuals"]:
            if part["rows"] is not None:
                owed[part["table"]].index_add_(0, part["rows"], part["values"])
    return owed / replicas


def test_table_residuals_follow_their_rows_and_keep_their_average():
    """Old: 4 ranks, mp 2 (table 0 cut at row 5 over both, table 1 whole on MP rank 1).
    New: 2 ranks, mp 1 (both tables whole on each of 2 replicas)."""
    old_shards = [[Shard(0, 0, 5, 10)], [Shard(0, 5, 10, 10), Shard(1, 0, 10, 10)]]
    rows = {0: [1, 4, 6, 9], 1: [0, 3, 7]}
    old = [table_state(rows, old_shards[r % 2], seed=r) for r in range(4)]
    new_shards = [Shard(0, 0, 10, 10), Shard(1, 0, 10, 10)]
    names = ["tables.0", "tables.1"]
    handed = [regrid_tables(old, 2, j, j, 2, new_shards, names) for j in range(2)]
    in_table_rows = [global_table_state(state, new_shards) for state in handed]
    torch.testing.assert_close(owed_rows(in_table_rows, 2), owed_rows(old, 2))
    assert handed[0]["dp"]["layers"]["tables.0"]["threshold"] == 0.5
    assert handed[1]["dp"]["step"] == 9


def test_table_state_rows_round_trip():
    shards = [Shard(0, 5, 10, 10)]
    state = table_state({0: [6, 9]}, shards, seed=0)
    assert state["residuals"][0]["rows"].tolist() == [6, 9]
    assert local_table_state(state, shards)["residuals"][0]["rows"].tolist() == [1, 4]


def test_owed_mass_counts_every_residual():
    states = [dense_state(0), None]
    expected = sum(float(v["residual"].abs().sum()) for v in states[0]["layers"].values())
    assert owed_mass(states) == pytest.approx(expected)
