"""Where samples come from, chosen by ``data.name``, and the shape the data gives the model."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from dct.config import ConfigError, RunConfig, data_seed
from dct.data.rank_batches import SampleSource
from dct.data.criteo import CriteoClicks
from dct.data.criteo_format import NUM_DENSE
from dct.data.synthetic import SyntheticClicks

log = logging.getLogger(__name__)


def open_source(cfg: RunConfig) -> SampleSource:
    data = cfg.data
    if data.name == "criteo":
        eval_path = None if data.eval_path is None else Path(data.eval_path)
        return CriteoClicks(Path(data.path), eval_path, data.eval_fraction)
    return SyntheticClicks(data, data_seed(cfg))


def with_data_shape(cfg: RunConfig) -> RunConfig:
    """``cfg`` with what real data decides filled in: for ``criteo``, the files' table sizes and
    dense feature count, and ``eval_size`` cut to the eval split's whole global batches.

    Raises ``DataError`` for unusable files, ``ConfigError`` for an eval split smaller than
    one global batch.
    """
    if cfg.data.name != "criteo":
        return cfg
    source = open_source(cfg)
    batch = cfg.train.batch_size
    eval_rows = source.split_rows("eval")
    if eval_rows < batch:
        raise ConfigError(
            f"the eval split of {cfg.data.eval_path or cfg.data.path} has {eval_rows} rows, fewer "
            f"than one global batch (train.batch_size={batch}); lower train.batch_size or use "
            "more eval data"
        )
    eval_size = min(cfg.data.eval_size, eval_rows) // batch * batch
    if eval_size != cfg.data.eval_size:
        log.info(
            "evaluating %d rows: whole global batches of the %d eval rows", eval_size, eval_rows
        )
    data = dataclasses.replace(
        cfg.data, cardinalities=source.table_sizes, num_dense=NUM_DENSE, eval_size=eval_size
    )
    return dataclasses.replace(cfg, data=data)
