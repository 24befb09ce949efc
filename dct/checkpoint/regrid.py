"""DCT-DP state written on one grid, handed to the ranks of another.

A replica's residual is gradient it still owes the model: the model receives the *average* of
what the replicas send, so the replicas together owe ``sum(residuals) / replicas``. On a grid
with ``R'`` replicas instead of ``R``, new replica ``j`` takes the residuals of the old replicas
``i`` with ``i % R' == j``, summed and scaled by ``R' / R``: the average owed is unchanged and
nothing is lost (with ``R' == R`` each replica keeps its own). A table's residual rows follow
their rows to whichever rank holds them now. Thresholds, the step and the counters of new
replica ``j`` are old replica ``j % R``'s (a table cut differently takes the threshold of its
first old block); density windows restart. A grid with no replicas of a part has nothing to
hold its residuals: they are dropped, and the caller reports their size.

Every function here is pure: states in, states out, no process group.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch

from dct.embedding.rows import coalesce
from dct.parallel.sharding import Shard

_TABLE_LAYER = re.compile(r"^tables\.(\d+)(?:\.rows\d+)?$")


def owed_mass(states: Sequence[dict[str, Any] | None]) -> float:
    """The L1 norm of all residuals in ``states`` (DCT-DP states, tables' or dense)."""
    total = 0.0
    for state in states:
        if state is None:
            continue
        for residual in _residual_tensors(state):
            total += float(residual.abs().sum())
    return total


def _residual_tensors(state: dict[str, Any]) -> list[torch.Tensor]:
    if "residuals" in state:  # a table state
        return [r["values"] for r in state["residuals"] if r["values"] is not None]
    return [
        layer["residual"] for layer in state["layers"].values() if layer["residual"] is not None
    ]


def _fresh_layers(layers: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"residual": None, "threshold": layer["threshold"], "window": {"sent": 0, "steps": 0}}
        for name, layer in layers.items()
    }


def regrid_dense(
    old: Sequence[dict[str, Any] | None], replica: int, replicas: int
) -> dict[str, Any] | None:
    """The dense-layer DCT-DP state of new replica ``replica`` of ``replicas``, from ``old``
    (one state per old replica, ``None`` where it had none)."""
    if not old or old[replica % len(old)] is None:
        return None
    base = old[replica % len(old)]
    layers = _fresh_layers(base["layers"])
    scale = replicas / len(old)
    for i in range(replica, len(old), replicas):
        for name, layer in old[i]["layers"].items():
            if layer["residual"] is None or name not in layers:
                continue
            mine = layers[name]
            part = layer["residual"] * scale
            mine["residual"] = part if mine["residual"] is None else mine["residual"] + part
    return {"step": base["step"], "layers": layers, "counters": dict(base["counters"])}


def regrid_tables(
    old: Sequence[dict[str, Any] | None],
    old_mp_size: int,
    rank: int,
    replica: int,
    replicas: int,
    shards: Sequence[Shard],
    names: Sequence[str],
) -> dict[str, Any] | None:
    """The tables' DCT-DP state of new rank ``rank``, replica ``replica`` of ``replicas``,
    holding ``shards`` (named ``names``), from ``old``: every old rank's state in
    ``global_table_state``'s form (``None`` where it had none), ranks ``i`` of old replica
    ``i // old_mp_size``."""
    base = old[rank % len(old)] if old else None
    if base is None:
        return None
    old_replicas = len(old) // old_mp_size
    scale = replicas / old_replicas
    sources = [s for i, s in enumerate(old) if s and (i // old_mp_size) % replicas == replica]
    residuals = []
    for shard in shards:
        rows, values = [], []
        for state in sources:
            for part in state["residuals"]:
                if part["table"] != shard.table or part["rows"] is None:
                    continue
                inside = (part["rows"] >= shard.start) & (part["rows"] < shard.stop)
                rows.append(part["rows"][inside] - shard.start)
                values.append(part["values"][inside] * scale)
        if sum(r.numel() for r in rows):
            summed = coalesce(torch.cat(rows), torch.cat(values))
            residuals.append({"rows": summed.rows, "values": summed.values})
        else:
            residuals.append({"rows": None, "values": None})
    thresholds: dict[int, float] = {}
    peers = old[(replica % old_replicas) * old_mp_size :][:old_mp_size]
    for state in peers:
        for name, layer in (state["dp"]["layers"] if state else {}).items():
            table = _TABLE_LAYER.match(name)
            if table and layer["threshold"] is not None:
                thresholds.setdefault(int(table.group(1)), layer["threshold"])
    layers = {
        name: {
            "residual": None,
            "threshold": thresholds.get(shard.table),
            "window": {"sent": 0, "steps": 0},
        }
        for name, shard in zip(names, shards)
    }
    dp = {"step": base["dp"]["step"], "layers": layers, "counters": dict(base["dp"]["counters"])}
    return {"dp": dp, "residuals": residuals, "flushed_rows": base["flushed_rows"]}


def global_table_state(state: dict[str, Any], shards: Sequence[Shard]) -> dict[str, Any]:
    """A ``TableDCTDPState.state_dict()`` with residual rows as table rows (not shard rows),
    each tagged with its table: the form written to a checkpoint."""
    residuals = [
        {
            "table": shard.table,
            "rows": None if r["rows"] is None else r["rows"] + shard.start,
            "values": r["values"],
        }
        for r, shard in zip(state["residuals"], shards, strict=True)
    ]
    return {**state, "residuals": residuals}


def local_table_state(state: dict[str, Any], shards: Sequence[Shard]) -> dict[str, Any]:
    """The inverse of ``global_table_state`` on the same shards."""
    residuals = [
        {"rows": None if r["rows"] is None else r["rows"] - shard.start, "values": r["values"]}
        for r, shard in zip(state["residuals"], shards, strict=True)
    ]
    return {**state, "residuals": residuals}
