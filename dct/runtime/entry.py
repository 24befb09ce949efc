"""What every entry point (training, benchmarks) does around its work.

Only rank 0 logs below WARNING, and other libraries only from WARNING up, unless
``output.log_level`` says otherwise (``dct.runtime.log_levels``); the process takes
``parallel.threads`` intra-op threads (``dct.runtime.threads``); the work runs inside a started
process group that is destroyed on every exit path. Each way of stopping early ends the process
with one line and an exit code, its traceback kept for ``HYDRA_FULL_ERROR=1``:

- a user mistake (``ConfigError``, ``DataError``, ``CheckpointError``): exit code 2;
- a full disk (``dct.runtime.no_space``: ``no space left on <dir>``): exit code 2, with no
  traceback of a log handler or of TensorBoard's writer thread on the way;
- a failed collective (a peer died or hangs, ``dct.runtime.peer_failure``): exit code 1;
- a diverged loss (``dct.runtime.faults.Diverged``, every rank alike, rank 0 says it): 1;
- SIGINT or SIGTERM (Ctrl-C, or torchrun/Slurm stopping the job; rank 0 says at which step):
  130 or 143.

None of them writes ``metrics.json``: a run directory with one is a finished run.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from dct.checkpoint.store import CheckpointError
from dct.config import ConfigError, RunConfig, validate
from dct.data.criteo_format import DataError
from dct.runtime import log_levels, peer_failure
from dct.runtime.faults import Diverged, Stopped, stop_on_signals
from dct.runtime.no_space import describe_no_space, quiet_when_full
from dct.runtime.process_group import distributed
from dct.runtime.threads import set_threads

log = logging.getLogger("dct.launch")

_KINDS = {ConfigError: "config", DataError: "data", CheckpointError: "checkpoint"}

Work = Callable[[RunConfig, Path, torch.device], object]


def run_or_exit(cfg: RunConfig, run_dir: Path, work: Work) -> None:
    """``work(cfg, run_dir, device)`` on this rank of the job, as described above.

    Example::

        run_or_exit(OmegaConf.to_object(raw), Path("outputs/run"), dct.train.run.run)
    """
    lead = int(os.environ.get("RANK", "0")) == 0
    log_levels.apply(cfg.output.log_level, lead)
    quiet_when_full()
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        with stop_on_signals():
            # Before the process group starts, so that a mistake is one line, not a peer error.
            validate(cfg, int(os.environ.get("WORLD_SIZE", "1")))
            log.info(set_threads(cfg.parallel.threads))
            with distributed(cfg.parallel.backend, cfg.parallel.timeout_s) as backend:
                work(cfg, run_dir, backend.device)
    except (ConfigError, DataError, CheckpointError) as error:
        if full_error:
            raise
        log.error("%s error: %s", _KINDS[type(error)], error)
        sys.exit(2)
    except Diverged as error:
        if full_error:
            raise
        if lead:
            log.error("diverged: %s", error)
        sys.exit(1)
    except Stopped as stop:
        if lead:
            at = "outside the training loop" if stop.step is None else f"at step {stop.step}"
            log.error(
                "interrupted %s (signal %d); no metrics.json was written: the same command "
                "resumes from the newest checkpoint, if any",
                at,
                stop.signum,
            )
        sys.exit(stop.exit_code)
    except OSError as error:
        no_space = describe_no_space(error, run_dir)
        if no_space is None or full_error:
            raise
        log.error("%s", no_space)
        sys.exit(2)
    except RuntimeError as error:
        failure = peer_failure.describe(error, cfg.parallel.timeout_s)
        if failure is None or full_error:
            raise
        log.error("peer error: %s", failure)
        sys.exit(1)
