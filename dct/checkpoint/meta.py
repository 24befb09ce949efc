"""A checkpoint's ``meta`` entry: what wrote it, and whether a run may continue from it.

A checkpoint is a flat DCP state dict (``dct.checkpoint.dcp_io``):

- ``model/<name>``: every parameter under its name in the single-process model
  (``models.recommender.Recommender``, the one ``models.zoo`` builds); a table is one
  ``[rows, dim]`` tensor of which each rank holds row blocks (written once, by replica 0);
- ``optim/dense/<name>/<key>``: the dense optimizer's state per parameter (Adagrad's ``sum``
  and ``step``); ``optim/tables/<t>``: the table optimizer's state, row blocks like the table;
- ``rank/<r>``: what belongs to rank ``r`` alone, one entry per part the trainer hands over
  (random state, DCT-DP states, DCT-MP's counters, byte meter, density band, progress);
- ``meta``: the format, step, model shape, optimizers, the grid it was written on and the data
  it was trained on (``data_record``: ``dct-predict`` finds the preprocessed files there); a
  run's last checkpoint after early stopping adds ``weights_step``, the step whose weights it
  holds (``dct.train.early_stopping``), and ``best/<name>``, the kept copy.

``dct.checkpoint.manager`` writes and reads these; this module says what ``meta`` holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dct.checkpoint.store import CheckpointError
from dct.config import ModelConfig, RunConfig, resolve_steps
from dct.data.sources import feature_layout, validation_rows
from dct.parallel.sharding import ShardingPlan
from dct.parallel.topology import Topology
from models.feature_tables import FeatureTables

# 2: each rank's record holds one entry per part handed to the manager (1 had a fixed layout).
FORMAT = 2
META = "meta"


def fingerprint(cfg: RunConfig) -> dict[str, Any]:
    """The settings a checkpoint's tensors must match, by their config names; the model's name
    and its own keys only where it is not DLRM (``model_config`` reads them back), which table
    each feature looks up and how it pools only where that is not a table per feature, summed
    (``model_features`` reads it back), and the validation split's rows only where there is
    one: a fingerprint written before those existed still matches."""
    shape = {
        "data.num_dense": cfg.data.num_dense,
        "data.cardinalities": list(cfg.data.cardinalities),
        "model.embedding_dim": cfg.model.embedding_dim,
        "model.bottom_mlp": list(cfg.model.bottom_mlp),
        "model.top_mlp": list(cfg.model.top_mlp),
        "optim.name": cfg.optim.name,
        "optim.tables": cfg.optim.tables,
    }
    if cfg.model.name != "dlrm":
        shape["model.name"] = cfg.model.name
    if cfg.model.name == "dlrm_dcn":
        shape["model.cross_layers"] = cfg.model.cross_layers
        shape["model.cross_rank"] = cfg.model.cross_rank
    layout = feature_layout(cfg.data)
    if not layout.is_default():
        shape["data.feature_tables"] = list(layout.feature_tables)
        shape["data.pooling"] = layout.pooling()
    # Another validation split trains other rows and keeps (or lacks) early stopping's copy.
    if validation_rows(cfg.data):
        shape["data.valid_size"] = validation_rows(cfg.data)
    return shape


def model_config(shape: dict[str, Any]) -> ModelConfig:
    """The model settings of a checkpoint's ``fingerprint`` (``models.zoo`` builds from them)."""
    return ModelConfig(
        name=shape.get("model.name", "dlrm"),
        embedding_dim=shape["model.embedding_dim"],
        bottom_mlp=list(shape["model.bottom_mlp"]),
        top_mlp=list(shape["model.top_mlp"]),
        cross_layers=shape.get("model.cross_layers", ModelConfig().cross_layers),
        cross_rank=shape.get("model.cross_rank", ModelConfig().cross_rank),
    )


def model_features(shape: dict[str, Any]) -> FeatureTables:
    """The feature layout of a checkpoint's ``fingerprint``."""
    return FeatureTables.build(
        shape["data.cardinalities"],
        shape.get("data.feature_tables", []),
        shape.get("data.pooling", []),
    )


def data_record(cfg: RunConfig) -> dict[str, Any]:
    """The files a run trained on: ``data.path`` made absolute and, for ``data=tabular``, the
    manifest's schema fingerprint (so scoring refuses files preprocessed again differently)."""
    path = getattr(cfg.data, "path", None)
    if path is None:
        return {"name": cfg.data.name}
    record = {"name": cfg.data.name, "path": str(Path(path).resolve())}
    if cfg.data.name == "tabular":
        from dct.data.tabular_format import read_manifest

        record["schema_fingerprint"] = read_manifest(Path(path)).schema_fingerprint
    return record


def grid(cfg: RunConfig, topology: Topology, plan: ShardingPlan | None) -> dict[str, Any]:
    """The grid and, in embedding mode, every MP rank's shards as ``[table, start, stop]``: a
    checkpoint written on an equal grid restores every rank exactly."""
    return {
        "world_size": topology.world_size,
        "mp_size": topology.mp_size,
        "mp_mode": cfg.parallel.mp_mode,
        "cuts": list(cfg.parallel.cuts),  # empty outside pipeline mode (validate)
        "plan": None
        if plan is None
        else [[[s.table, s.start, s.stop] for s in shards] for shards in plan.shards],
    }


def check_meta(meta: Any, cfg: RunConfig, source: Path) -> None:
    """Raise ``CheckpointError`` naming ``source`` unless ``meta`` is a dct checkpoint's that
    ``cfg`` can continue: the same model shape and optimizers, data preprocessed with the same
    schema (where the checkpoint records one), a step within ``train.steps``."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        written = meta.get("format") if isinstance(meta, dict) else None
        earlier = (
            f": an earlier version wrote it (format {written}), which cannot resume here; "
            "python -m dct.export still reads its weights, or train.resume=never starts over"
            if isinstance(written, int) and 0 < written < FORMAT
            else ""
        )
        raise CheckpointError(f"{source} is not a dct checkpoint (format {FORMAT}){earlier}")
    saved, mine = meta["fingerprint"], fingerprint(cfg)
    keys = list(dict.fromkeys([*mine, *saved]))
    differ = [
        f"{k}={saved.get(k)} there, {mine.get(k)} here" for k in keys if saved.get(k) != mine.get(k)
    ]
    if differ:
        raise CheckpointError(
            f"{source} was written for another model: {'; '.join(differ)} "
            "(resume with the same settings, or train.resume=never)"
        )
    trained = (meta.get("data") or {}).get("schema_fingerprint")
    here = data_record(cfg).get("schema_fingerprint") if trained is not None else None
    if trained is not None and here is not None and here != trained:
        raise CheckpointError(
            f"{source} was trained on data preprocessed with another schema (fingerprint "
            f"{trained[:12]} there, {here[:12]} here): resume on the directory it was trained "
            "on, or train.resume=never"
        )
    steps = resolve_steps(cfg.train).steps
    if meta["step"] > steps:
        raise CheckpointError(f"{source} is at step {meta['step']}, past train.steps={steps}")
