"""The Hydra callbacks that guard the run directory, both registered in ``configs/train.yaml``.

Hydra creates ``hydra.run.dir`` (or a sweep's ``hydra.sweep.dir``) before the task starts; a
directory that cannot be used would end in Hydra's own traceback, and a second job would
overwrite a running job's files. ``ClaimRunDir`` runs first: ``dct.runtime.run_dir.claim``, and
a refusal is one line and exit code 2.

Hydra would also write its ``.hydra/`` files (the composed config, its own config, the
overrides) before the task starts, so a run refused by its config or its checkpoint would
rewrite a finished run's record. ``configs/train.yaml`` turns that off (``hydra.output_subdir:
null``) and ``RecordOnAcceptance`` writes the same files once the run is accepted
(``dct.runtime.acceptance``).
"""

from __future__ import annotations

import copy
import os
import socket
import sys
from pathlib import Path
from typing import IO, Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from dct.runtime import acceptance
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


class RecordOnAcceptance(Callback):
    """Writes Hydra's ``config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` into
    ``<run dir>/<subdir>`` when the run is accepted, with the content Hydra gives them; nothing
    if the run is refused. A ``hydra.output_subdir`` set on the command line makes Hydra write
    them itself, at once, and this callback stands aside."""

    def __init__(self, subdir: str = ".hydra") -> None:
        self.subdir = subdir

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.output_subdir is not None:
            return
        task = copy.deepcopy(config)
        with read_write(task), open_dict(task):
            del task["hydra"]
        # Rendered now, as Hydra would have rendered them before the task started.
        texts = {
            "config.yaml": OmegaConf.to_yaml(task),
            "hydra.yaml": OmegaConf.to_yaml(HydraConfig.instance().cfg),
            "overrides.yaml": OmegaConf.to_yaml(config.hydra.overrides.task),
        }
        directory = Path(config.hydra.runtime.output_dir) / self.subdir
        acceptance.on_acceptance(lambda: _write_all(directory, texts))

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        # A job of a sweep that was never accepted hands nothing on to the next.
        acceptance.discard()


def _write_all(directory: Path, texts: dict[str, str]) -> None:
    """Each file replaced whole: every worker of the job writes the same files."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        partial = directory / f"{name}.{socket.gethostname()}.{os.getpid()}.partial"
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, directory / name)


def _rendezvous() -> str | None:
    """What the workers of a job started without torchrun share: their rendezvous address."""
    if "MASTER_PORT" not in os.environ:
        return None
    return f"{os.environ.get('MASTER_ADDR', 'localhost')}:{os.environ['MASTER_PORT']}"
