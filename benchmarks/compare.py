"""Train the same config dense and compressed, in one job, and tabulate what each variant cost.

Both variants use the same seed, model initialisation and batches; only the named compressor
(``dp`` or ``mp``) is switched. Rows are ``metrics.json`` records (``dct.train.loop``), so a
benchmark's table and a training run's metrics say the same thing.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
import torch.distributed as dist

from dct.config import RunConfig, validate
from dct.data.sources import with_data_shape
from dct.parallel.topology import Topology, grid_shape
from dct.train.loop import train
from dct.train.sinks import write_json_atomically
from dct.train.summary import summary_metrics

COMPRESSORS = {"dp": "dct-dp", "mp": "dct-mp"}


def variant(cfg: RunConfig, compressor: str, enabled: bool) -> RunConfig:
    """A copy of ``cfg`` with ``dct.<compressor>`` switched on or off and no outputs but metrics."""
    out = copy.deepcopy(cfg)
    getattr(out.dct, compressor).enabled = enabled
    out.output.tensorboard = out.output.progress_bar = False
    return out


def dense_and_compressed(
    cfg: RunConfig, compressor: str, topology: Topology, device: torch.device
) -> dict[str, dict[str, object]]:
    """``{"dense": metrics, "dct-dp" or "dct-mp": metrics}``, trained one after the other."""
    rows = {}
    for name, enabled in (("dense", False), (COMPRESSORS[compressor], True)):
        run_cfg = variant(cfg, compressor, enabled)
        rows[name] = summary_metrics(train(run_cfg, topology, device), run_cfg, topology)
    return rows


def markdown_table(rows: dict[str, dict[str, object]], channel: str) -> str:
    """Per variant: ``channel`` bytes per step sent and dense, ratio, step time, AUC, log-loss."""
    label = channel.upper()
    dense_time = rows["dense"]["step_time_median_s"]
    lines = [
        f"| variant | {label} bytes/step sent | {label} bytes/step dense | {label} ratio "
        "| step ms | step time / dense | AUC | log-loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in rows.items():
        steps = m["steps"]
        lines.append(
            f"| {name} | {m[f'{channel}_bytes_sent'] / steps:,.0f} "
            f"| {m[f'{channel}_bytes_dense'] / steps:,.0f} | {m[f'{channel}_ratio']:.1f} "
            f"| {1000 * m['step_time_median_s']:.1f} "
            f"| {m['step_time_median_s'] / dense_time:.2f} | {m['auc']:.4f} | {m['logloss']:.4f} |"
        )
    return "\n".join(lines)


def run(cfg: RunConfig, run_dir: Path, device: torch.device, compressor: str) -> None:
    """Inside a started process group: both variants; rank 0 prints the table and writes
    ``run_dir/benchmark.json``."""
    world = dist.get_world_size()
    validate(cfg, world)
    cfg = with_data_shape(cfg)
    topology = Topology(grid_shape(cfg, world), device.type)
    rows = dense_and_compressed(cfg, compressor, topology, device)
    if topology.rank == 0:
        write_json_atomically(run_dir / "benchmark.json", rows)
        settings = dataclasses.asdict(getattr(cfg.dct, compressor))
        settings.pop("enabled")
        table = markdown_table(rows, compressor)
        print(
            f"\n{COMPRESSORS[compressor]} {settings}\n{world} ranks (mp {cfg.parallel.mp_size}), "
            f"{cfg.train.steps} steps of {cfg.train.batch_size}\n\n{table}\n"
        )
