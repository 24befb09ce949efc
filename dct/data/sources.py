"""Where samples come from, chosen by ``data.name``, and the shape the data gives the model."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from dct.config import CriteoDataConfig, RunConfig, data_seed
from dct.config.runtime_checks import check_eval_split
from dct.data.criteo import CriteoClicks
from dct.data.criteo_format import NUM_DENSE
from dct.data.rank_batches import SampleSource
from dct.data.synthetic import SyntheticClicks

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ShapedCriteoConfig(CriteoDataConfig):
    """``data=criteo`` with the shape its files declare, made by ``with_data_shape``, so that the
    readers of ``cfg.data.num_dense`` and ``cfg.data.cardinalities`` see every source alike.
    Not a schema of the ``data`` group: these are the files' facts, not settings."""

    num_dense: int = NUM_DENSE
    cardinalities: list[int] = dataclasses.field(default_factory=list)


def open_source(cfg: RunConfig) -> SampleSource:
    data = cfg.data
    if isinstance(data, CriteoDataConfig):
        eval_path = None if data.eval_path is None else Path(data.eval_path)
        return CriteoClicks(Path(data.path), eval_path, data.eval_fraction)
    return SyntheticClicks(data, data_seed(cfg))


def with_data_shape(cfg: RunConfig) -> RunConfig:
    """``cfg`` with what real data decides filled in: for ``criteo``, the files' table sizes and
    dense feature count (a ``ShapedCriteoConfig``), and ``eval_size`` cut to the eval split's
    whole global batches.

    Raises ``DataError`` for unusable files, ``ConfigError`` for an eval split smaller than
    one global batch.
    """
    if not isinstance(cfg.data, CriteoDataConfig):
        return cfg
    source = open_source(cfg)
    batch = cfg.train.batch_size
    eval_rows = source.split_rows("eval")
    check_eval_split(eval_rows, batch, cfg.data.eval_path or cfg.data.path)
    eval_size = min(cfg.data.eval_size, eval_rows) // batch * batch
    if eval_size != cfg.data.eval_size:
        log.info(
            "evaluating %d rows: whole global batches of the %d eval rows", eval_size, eval_rows
        )
    settings = {item.name: getattr(cfg.data, item.name) for item in dataclasses.fields(cfg.data)}
    data = ShapedCriteoConfig(
        **{**settings, "eval_size": eval_size, "cardinalities": source.table_sizes}
    )
    return dataclasses.replace(cfg, data=data)
