"""Where samples come from, chosen by ``data.name``, and the shape the data gives the model."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from dct.config import (
    CriteoDataConfig,
    DataConfig,
    RunConfig,
    SyntheticDataConfig,
    TabularDataConfig,
    data_seed,
    resolve_steps,
)
from dct.data.criteo import CriteoClicks
from dct.data.criteo_format import NUM_DENSE
from dct.data.rank_batches import SampleSource
from dct.data.synthetic import SyntheticClicks, capped_cardinalities
from dct.data.tabular import TabularClicks
from models.feature_tables import FeatureTables

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DataShape:
    """The shape files declare, added to their source's settings by ``with_data_shape`` so that
    the readers of ``cfg.data.num_dense`` and ``cfg.data.cardinalities`` see every source alike.
    Not a schema of the ``data`` group: these are the files' facts, not settings. Listed first
    among a shaped config's bases, its fields come after the source's own."""

    num_dense: int = 0
    cardinalities: list[int] = dataclasses.field(default_factory=list)
    """Rows of each table (one per feature unless features share tables)."""
    feature_tables: list[int] = dataclasses.field(default_factory=list)
    """The table each feature looks up; empty: a table per feature."""
    pooling: list[str] = dataclasses.field(default_factory=list)
    """Each feature's pooling, ``sum`` or ``mean``; empty: all ``sum``."""
    valid_size: int = 0
    """Rows of the validation split (held out of the train split), every one scored."""


@dataclasses.dataclass
class ShapedCriteoConfig(DataShape, CriteoDataConfig):
    """``data=criteo`` with the shape its files declare."""

    num_dense: int = NUM_DENSE


@dataclasses.dataclass
class ShapedTabularConfig(DataShape, TabularDataConfig):
    """``data=tabular`` with the shape its manifest declares."""


# The sources whose shape is read from files, and the config that carries it.
SHAPED: dict[type[DataConfig], type[DataShape]] = {
    CriteoDataConfig: ShapedCriteoConfig,
    TabularDataConfig: ShapedTabularConfig,
}


def open_source(cfg: RunConfig) -> SampleSource:
    data = cfg.data
    if isinstance(data, CriteoDataConfig):
        eval_path = None if data.eval_path is None else Path(data.eval_path)
        return CriteoClicks(Path(data.path), eval_path, data.eval_fraction)
    if isinstance(data, TabularDataConfig):
        return TabularClicks(Path(data.path), data.valid_fraction)
    return SyntheticClicks(data, data_seed(cfg))


def with_data_shape(cfg: RunConfig) -> RunConfig:
    """``cfg`` with what the data decides filled in: the run's step count
    (``dct.config.resolve_steps``: ``train.epochs`` counted over a file source's train split,
    or the default), for ``synthetic`` its table sizes capped at ``data.max_rows``, and for
    ``criteo`` and ``tabular`` the files' table sizes and dense feature count (a ``DataShape``:
    ``ShapedCriteoConfig``, ``ShapedTabularConfig``) and ``eval_size`` as a row count: the whole
    eval split for ``null``, at most the split otherwise. Applied to its own result it changes
    nothing.

    Raises ``DataError`` for unusable files.
    """
    shaped = next((s for base, s in SHAPED.items() if isinstance(cfg.data, base)), None)
    if shaped is None:
        data = cfg.data
        if isinstance(data, SyntheticDataConfig):
            data = dataclasses.replace(data, cardinalities=capped_cardinalities(data))
        return dataclasses.replace(cfg, data=data, train=resolve_steps(cfg.train))
    source = open_source(cfg)
    train_rows = source.split_rows("train")
    valid_rows = source.split_rows("valid") if isinstance(source, TabularClicks) else 0
    train = resolve_steps(cfg.train, train_rows, validation=valid_rows > 0)
    if cfg.train.epochs is not None:
        log.info(
            "train.epochs=%d: %d steps of %d rows over the %d train rows",
            cfg.train.epochs,
            train.steps,
            train.batch_size,
            train_rows,
        )
    eval_rows = source.split_rows("eval")
    asked = cfg.data.eval_size
    eval_size = eval_rows if asked is None else min(asked, eval_rows)
    log.info("evaluating %d of the %d eval rows, every one scored", eval_size, eval_rows)
    if valid_rows:
        log.info(
            "validation: the last %d of the %d train rows, held out; training stops after %s",
            valid_rows,
            train_rows + valid_rows,
            f"{train.patience} evaluations without a lower validation log-loss, at most "
            f"{train.steps} steps"
            if train.patience
            else f"{train.steps} steps (train.patience=0)",
        )
    settings = {item.name: getattr(cfg.data, item.name) for item in dataclasses.fields(cfg.data)}
    shape = {
        "num_dense": _num_dense(source),
        "cardinalities": source.table_sizes,
        "valid_size": valid_rows,
    }
    if isinstance(source, TabularClicks):
        layout = source.features
        if not layout.is_default():
            shape |= {"feature_tables": list(layout.feature_tables), "pooling": layout.pooling()}
    data = shaped(**{**settings, "eval_size": eval_size, **shape})
    return dataclasses.replace(cfg, data=data, train=train)


def validation_rows(data: DataConfig) -> int:
    """Rows of the validation split ``with_data_shape`` found (0: none, or no file data)."""
    return data.valid_size if isinstance(data, DataShape) else 0


def feature_layout(data: DataConfig) -> FeatureTables:
    """Which table each feature of ``data`` (shaped by ``with_data_shape``) looks up, and how
    its bag is pooled: what the files declare, else a table per feature, summed."""
    if isinstance(data, DataShape):
        return FeatureTables.build(data.cardinalities, data.feature_tables, data.pooling)
    return FeatureTables.one_per_feature(data.cardinalities)


def _num_dense(source: SampleSource) -> int:
    """A tabular directory's dense features are in its manifest; Criteo's are its format's."""
    return source.num_dense if isinstance(source, TabularClicks) else NUM_DENSE
