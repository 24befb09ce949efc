"""Train hybrid-parallel DLRM: ``torchrun --nproc_per_node=N launch/train.py [overrides]``.

A plain ``python launch/train.py`` trains as one process. Config errors end the run with one
line and exit code 2; set ``HYDRA_FULL_ERROR=1`` to see their traceback too.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dct.config.store import register_schemas
from dct.runtime.hydra_errors import exit_on_config_errors

register_schemas(ConfigStore.instance(), Path(__file__).resolve().parents[1] / "configs")


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(raw: DictConfig) -> None:
    # Imported once the config is composed and the run directory claimed, so that a mistake
    # in either is reported before torch loads.
    from dct.runtime.entry import run_or_exit
    from dct.train.run import run

    run_or_exit(OmegaConf.to_object(raw), Path(HydraConfig.get().runtime.output_dir), run)


if __name__ == "__main__":
    exit_on_config_errors(main)
