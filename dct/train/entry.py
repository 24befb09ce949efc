"""What every entry point (training, benchmarks) does around its work.

Only rank 0 logs below WARNING; the work runs inside a started process group that is destroyed
on every exit path; a user mistake (``ConfigError``, ``DataError``, ``CheckpointError``) ends
the process with one line and exit code 2, its traceback kept for ``HYDRA_FULL_ERROR=1``; a
failed collective (a peer died or hangs, ``dct.parallel.peer_failure``) with one line and exit
code 1.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from dct.checkpoint.store import CheckpointError
from dct.config import ConfigError, RunConfig
from dct.data.criteo_format import DataError
from dct.parallel import peer_failure
from dct.parallel.process_group import distributed

log = logging.getLogger("dct.launch")

_KINDS = {ConfigError: "config", DataError: "data", CheckpointError: "checkpoint"}

Work = Callable[[RunConfig, Path, torch.device], object]


def run_or_exit(cfg: RunConfig, run_dir: Path, work: Work) -> None:
    """``work(cfg, run_dir, device)`` on this rank of the job, as described above.

    Example::

        run_or_exit(OmegaConf.to_object(raw), Path("outputs/run"), dct.train.run.run)
    """
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        with distributed(cfg.parallel.backend, cfg.parallel.timeout_s) as backend:
            work(cfg, run_dir, backend.device)
    except (ConfigError, DataError, CheckpointError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s error: %s", _KINDS[type(error)], error)
        sys.exit(2)
    except RuntimeError as error:
        failure = peer_failure.describe(error, cfg.parallel.timeout_s)
        if failure is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("peer error: %s", failure)
        sys.exit(1)
