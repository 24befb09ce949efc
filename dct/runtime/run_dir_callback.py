"""The Hydra callback that claims the run directory before Hydra writes anything into it.

Hydra creates ``hydra.run.dir`` (or a sweep's ``hydra.sweep.dir``) and writes its ``.hydra/``
files before the task starts; a directory that cannot be used would end in Hydra's own
traceback, and a second job would overwrite a running job's files. This callback, registered
in ``configs/train.yaml``, runs first: ``dct.runtime.run_dir.claim``, and a refusal is one line
and exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dct.runtime.run_dir import RunDirError, claim


class ClaimRunDir(Callback):
    """Holds the directory's lock for the life of the process."""

    def __init__(self) -> None:
        self.lock: IO[str] | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(Path(config.hydra.sweep.dir))

    def _claim(self, run_dir: Path) -> None:
        job = os.environ.get("TORCHELASTIC_RUN_ID") or _rendezvous() or f"pid{os.getpid()}"
        try:
            self.lock = claim(
                run_dir,
                job,
                node_rank=int(os.environ.get("GROUP_RANK", "0")),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            )
        except RunDirError as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"run directory error: {error}", file=sys.stderr)
            sys.exit(2)


def _rendezvous() -> str | None:
    """What the workers of a job started without torchrun share: their rendezvous address."""
    if "MASTER_PORT" not in os.environ:
        return None
    return f"{os.environ.get('MASTER_ADDR', 'localhost')}:{os.environ['MASTER_PORT']}"
