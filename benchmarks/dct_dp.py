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

import copy
import logging
import os
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dct.config import ConfigError, RunConfig, validate
from dct.parallel.process_group import distributed
from dct.parallel.topology import GridShape, Topology
from dct.train.loop import summary_metrics, train
from dct.train.sinks import write_json_atomically

log = logging.getLogger("dct.benchmarks")

ConfigStore.instance().store(name="run_schema", node=RunConfig)


def variant(cfg: RunConfig, compressed: bool) -> RunConfig:
    out = copy.deepcopy(cfg)
    out.dct.dp.enabled = compressed
    out.output.tensorboard = out.output.progress_bar = False
    return out


def table(rows: dict[str, dict[str, object]]) -> str:
    dense_time = rows["dense"]["step_time_median_s"]
    lines = [
        "| variant | DP bytes/step sent | DP bytes/step dense | DP ratio | step ms "
        "| step time / dense | AUC | log-loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in rows.items():
        steps = m["steps"]
        lines.append(
            f"| {name} | {m['dp_bytes_sent'] / steps:,.0f} | {m['dp_bytes_dense'] / steps:,.0f} "
            f"| {m['dp_ratio']:.1f} | {1000 * m['step_time_median_s']:.1f} "
            f"| {m['step_time_median_s'] / dense_time:.2f} | {m['auc']:.4f} | {m['logloss']:.4f} |"
        )
    return "\n".join(lines)


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(raw: DictConfig) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger().setLevel(logging.WARNING)
    cfg: RunConfig = OmegaConf.to_object(raw)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        with distributed(cfg.parallel.backend, cfg.parallel.timeout_s) as backend:
            world = torch.distributed.get_world_size()
            validate(cfg, world)
            topology = Topology(
                GridShape(world, cfg.parallel.mp_size, len(cfg.data.cardinalities)),
                backend.device.type,
            )
            rows = {}
            for name, compressed in (("dense", False), ("dct-dp", True)):
                run_cfg = variant(cfg, compressed)
                result = train(run_cfg, topology, backend.device)
                rows[name] = summary_metrics(result, run_cfg, topology)
    except ConfigError as error:
        log.error("config error: %s", error)
        sys.exit(2)
    if topology.rank == 0:
        write_json_atomically(run_dir / "benchmark.json", rows)
        dp = cfg.dct.dp
        print(
            f"\nDCT-DP density {dp.density}, {dp.value_dtype} values, update_every "
            f"{dp.update_every}; {world} ranks (mp {cfg.parallel.mp_size}), "
            f"{cfg.train.steps} steps of {cfg.train.batch_size}\n\n{table(rows)}\n"
        )


if __name__ == "__main__":
    main()
