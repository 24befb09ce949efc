"""Train hybrid-parallel DLRM: ``torchrun --nproc_per_node=N launch/train.py [overrides]``.

A plain ``python launch/train.py`` trains as one process. Config errors end the run with one
line and exit code 2; set ``HYDRA_FULL_ERROR=1`` to see their traceback too.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dct.config import ConfigError, RunConfig
from dct.parallel.process_group import distributed
from dct.train.run import run

log = logging.getLogger("dct.launch")

ConfigStore.instance().store(name="run_schema", node=RunConfig)


def _quiet_other_ranks() -> None:
    """Hydra configured logging; only rank 0 speaks below WARNING."""
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger().setLevel(logging.WARNING)


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(raw: DictConfig) -> None:
    _quiet_other_ranks()
    cfg: RunConfig = OmegaConf.to_object(raw)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        with distributed(cfg.parallel.backend, cfg.parallel.timeout_s) as backend:
            run(cfg, run_dir, backend.device)
    except ConfigError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("config error: %s", error)
        sys.exit(2)


if __name__ == "__main__":
    main()
