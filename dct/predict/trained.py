"""What a checkpoint was trained on: its model, and the ``dct-preprocess`` directory that encodes
rows for it.

- **The model** comes from the checkpoint, whatever grid wrote it: ``dct.export`` assembles it,
  and the checkpoint's ``meta`` (``dct.checkpoint.meta``) gives its shape.
- **The preprocessed directory** (manifest: schema, vocabularies, dense statistics) is the one
  given; else the one the checkpoint's ``meta`` records (``data.path``); else the ``data.path``
  of the run that wrote it (``RUN/.hydra/config.yaml`` for a checkpoint ``RUN/checkpoints/
  step_N``, relative to the directory the run was started from, Hydra's ``runtime.cwd``).
- **Still the same data**: a schema fingerprint the checkpoint records must equal the
  manifest's, and the model's dense width and table sizes the manifest's, so a directory
  preprocessed again after training (another schema, other rows) is refused.

Example::

    trained = trained_on(Path("outputs/run/checkpoints/step_00000400"))
    model = load_model(trained)
    encoder = Encoder(trained.schema, vocabularies(trained), trained.manifest.dense)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dct.data.criteo_format import DataError
from dct.data.feature_schema import (
    FeatureSchema,
)
from dct.data.tabular_format import TabularManifest, read_manifest


class PredictError(ValueError):
    """Something the user must fix that is neither a data nor a checkpoint error; one line."""


@dataclass(frozen=True)
class Trained:
    """A checkpoint, its ``meta``, and the preprocessed directory its model was trained on."""

    checkpoint: Path
    meta: dict[str, Any]
    data: Path
    manifest: TabularManifest
    schema: FeatureSchema

    @property
    def step(self) -> int:
        """The step whose weights the checkpoint holds: the best evaluation's, where early
        stopping restored them before the run's last save."""
        return int(self.meta.get("weights_step", self.meta["step"]))


def trained_on(checkpoint: Path, data: Path | None = None) -> Trained:
    """``checkpoint`` and the directory it was trained on (``data`` if given), checked.

    Raises ``CheckpointError`` for an unusable checkpoint, ``PredictError`` when the directory
    is not known or has moved, ``DataError`` for a directory that is not (or no longer) the one
    the model was trained on.
    """
    from dct.checkpoint.store import check_complete

    checkpoint = newest_checkpoint(Path(checkpoint))
    check_complete(checkpoint)
    meta = read_meta(checkpoint)
    directory = find_data(checkpoint, meta, data)
    manifest = read_manifest(directory)
    check_same_data(manifest, meta, checkpoint, directory)
    return Trained(checkpoint, meta, directory, manifest, manifest_schema(manifest))


def newest_checkpoint(path: Path) -> Path:
    """``path`` itself, unless it is a directory of checkpoints (a run's ``checkpoints/``, whose
    last step early stopping decides): then its newest complete one, if any."""
    from dct.checkpoint.dcp_io import METADATA_FILE
    from dct.checkpoint.store import CheckpointError, CheckpointStore, check_complete

    if not path.is_dir() or (path / METADATA_FILE).is_file():
        return path
    for candidate in reversed(CheckpointStore(path, keep=1).published()):
        try:
            check_complete(candidate)
        except CheckpointError:
            continue
        return candidate
    return path  # check_complete says what it lacks


def read_meta(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's ``meta`` entry (``dct.checkpoint.meta``): step, model shape, grid."""
    from dct.checkpoint import dcp_io
    from dct.checkpoint.meta import META
    from dct.checkpoint.store import CheckpointError

    state: dict[str, Any] = {META: None}
    not_dct = CheckpointError(f"{checkpoint} is a DCP checkpoint but not one dct wrote")
    try:
        if META not in dcp_io.read_metadata(checkpoint).state_dict_metadata:
            raise not_dct
        dcp_io.load(state, checkpoint)
    except OSError as error:
        raise CheckpointError(f"cannot read {checkpoint}: {error}") from None
    if not isinstance(state[META], dict) or "fingerprint" not in state[META]:
        raise not_dct
    return state[META]


def find_data(checkpoint: Path, meta: dict[str, Any], given: Path | None) -> Path:
    """The preprocessed directory: ``given``; else the one ``meta`` records; else ``data.path``
    of the run directory holding ``checkpoint``. ``PredictError`` when none is known or the
    one recorded has gone."""
    if given is not None:
        return Path(given)
    recorded = (meta.get("data") or {}).get("path")
    where = f"{checkpoint}'s meta"
    if recorded is None:
        run_dir = checkpoint.absolute().parent.parent
        config = run_dir / ".hydra" / "config.yaml"
        if not config.is_file():
            raise PredictError(
                f"{checkpoint} does not say which preprocessed directory it was trained on (no "
                f"{config}); give it with --data DIR"
            )
        recorded, started_in = _run_data_path(run_dir)
        if recorded is None:
            raise PredictError(
                f"{config} names no data.path (the run did not train on data=tabular); give the "
                "preprocessed directory with --data DIR"
            )
        where = str(config)
        if started_in is not None:
            recorded = str(Path(started_in) / recorded)
    if not Path(recorded).is_dir():
        raise PredictError(
            f"{recorded}, the preprocessed directory {where} names, does not exist (moved?); "
            "give it with --data DIR"
        )
    return Path(recorded)


def _run_data_path(run_dir: Path) -> tuple[str | None, str | None]:
    """``data.path`` of the run's composed config, and the directory the run started in
    (``None`` if unknown)."""
    import yaml

    def read(name: str) -> dict:
        path = run_dir / ".hydra" / name
        try:
            loaded = yaml.safe_load(path.read_text()) if path.is_file() else None
        except (OSError, yaml.YAMLError):
            loaded = None
        return loaded if isinstance(loaded, dict) else {}

    data = read("config.yaml").get("data") or {}
    runtime = (read("hydra.yaml").get("hydra") or {}).get("runtime") or {}
    path = data.get("path") if data.get("name", "tabular") == "tabular" else None
    return path, runtime.get("cwd")


def check_same_data(
    manifest: TabularManifest, meta: dict[str, Any], checkpoint: Path, directory: Path
) -> None:
    """``DataError`` unless ``directory`` is still what the model was trained on: the schema
    fingerprint the checkpoint records (where it records one), the dense width and the table
    sizes."""
    from dct.checkpoint.meta import model_features

    rebuilt = (
        f"{directory} was preprocessed again after training; score with the directory the "
        "model was trained on (--data DIR), or train on this one"
    )
    trained = (meta.get("data") or {}).get("schema_fingerprint")
    if trained is not None and trained != manifest.schema_fingerprint:
        raise DataError(
            f"{directory}'s schema (fingerprint {manifest.schema_fingerprint[:12]}) is not the "
            f"one {checkpoint} was trained on ({trained[:12]}): {rebuilt}"
        )
    shape = meta["fingerprint"]
    dense, features = shape["data.num_dense"], model_features(shape)
    if (dense, features) != (len(manifest.dense), manifest.features):
        raise DataError(
            f"{directory} holds {len(manifest.dense)} dense features and tables of "
            f"{list(manifest.features.table_sizes)} rows, but {checkpoint} was trained on "
            f"{dense} and {list(features.table_sizes)} (or features looking up, or pooling, "
            f"otherwise): {rebuilt}"
        )


def manifest_schema(manifest: TabularManifest) -> FeatureSchema:
    """The ``FeatureSchema`` a manifest records (in ``FeatureSchema.to_dict``'s form)."""
    try:
        return FeatureSchema.from_dict(manifest.schema)
    except (KeyError, TypeError) as error:
        raise DataError(
            f"the manifest's schema cannot be read by this dct ({error}); preprocess again"
        ) from None


def vocabularies(trained: Trained) -> list[list[str] | None]:
    """Each sparse feature's vocabulary in table-row order (from row 2), ``None`` if hashed."""
    found: list[list[str] | None] = []
    for table in trained.manifest.tables:
        if table.vocabulary is None:
            found.append(None)
            continue
        path = trained.data / table.vocabulary
        try:
            found.append(pq.read_table(path)["value"].to_pylist())
        except (OSError, KeyError, pa.ArrowInvalid) as error:
            raise DataError(f"{path} cannot be read ({error}); preprocess again") from None
    return found


def load_model(trained: Trained) -> Any:
    """The checkpoint's single-process model (``models.zoo``) in eval mode, assembled by
    ``dct.export`` from whatever grid wrote it."""
    import torch

    from dct.checkpoint.meta import model_config, model_features
    from dct.export import load_model_state
    from models.zoo import recommender

    state, _ = load_model_state(trained.checkpoint)
    shape = trained.meta["fingerprint"]
    with torch.device("meta"):  # no initial weights drawn: the checkpoint's replace them
        model = recommender(
            model_config(shape), shape["data.num_dense"], model_features(shape), seed=0
        )
    model.load_state_dict(state, assign=True)
    return model.eval()
