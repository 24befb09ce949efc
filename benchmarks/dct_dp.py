"""DCT-DP against the dense all-reduce, on the same model, seed and batches, in one job.

    torchrun --standalone --nproc_per_node=2 benchmarks/dct_dp.py \
        dct.dp.density=0.005 dct.dp.value_dtype=float16 train.steps=300

Takes the training config and its overrides (``dct.dp.enabled`` is set by the script), trains
once with the plain all-reduce and once with DCT-DP, and prints per variant: DP bytes per step
(sent and fp32 dense), the ratio, median step time and its ratio to dense, final AUC and
log-loss. Rank 0 also writes ``benchmark.json`` to the run directory. A benchmark, not a test:
on loopback the network is never the bottleneck, so step time shows the cost of compressing.
"""

from __future__ import annotations

import functools
from pathlib import Path

import compare
import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dct.config.store import register_schemas
from dct.runtime.entry import run_or_exit
from dct.runtime.hydra_errors import exit_on_config_errors

register_schemas(ConfigStore.instance(), Path(__file__).resolve().parents[1] / "configs")


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(raw: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    run_or_exit(OmegaConf.to_object(raw), run_dir, functools.partial(compare.run, compressor="dp"))


if __name__ == "__main__":
    exit_on_config_errors(main)
