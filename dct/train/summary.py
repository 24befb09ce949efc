"""The flat ``metrics.json`` record of a run (schema in docs/metrics.md)."""

from __future__ import annotations

import statistics

from dct.comm.meter import REPORTED
from dct.config import RunConfig, mp_codec_names
from dct.parallel.topology import Topology
from dct.train import compression_report
from dct.train.loop import TrainResult


def summary_metrics(result: TrainResult, cfg: RunConfig, topology: Topology) -> dict[str, object]:
    """The flat ``metrics.json`` record of a run (schema in docs/metrics.md)."""
    ev, traffic = result.evaluation, result.bytes_per_rank
    metrics: dict[str, object] = {
        "auc": ev.auc,
        "logloss": ev.logloss,
        "accuracy": ev.accuracy,
        "ne": ev.ne,
        "calibration": ev.calibration,
        "gauc": ev.gauc,
        "bayes_auc": ev.bayes_auc,
        "eval_samples": ev.num_samples,
        "final_train_loss": result.losses[-1],
        "samples_per_sec": cfg.train.batch_size * len(result.step_times) / sum(result.step_times),
        "step_time_median_s": statistics.median(result.step_times),
        "read_time_median_s": statistics.median(result.read_times),
        "steps": len(result.step_times),
        "best_step": None if result.stopping is None else result.stopping.best_step,
        "valid_logloss": None if result.stopping is None else result.stopping.best_loss,
        "stopped_early": result.stopped,
        "world_size": topology.world_size,
        "mp_size": topology.mp_size,
        "dp_size": topology.dp_size,
        **compression_report.summary(result.model),
        **result.density_band.summary(),
        **result.memory.summary(),
    }
    for channel in REPORTED:
        metrics[f"{channel}_bytes_sent"] = traffic[channel].sent
        metrics[f"{channel}_bytes_dense"] = traffic[channel].dense
        metrics[f"{channel}_ratio"] = traffic[channel].ratio
    # Per training step; evaluation's forward transfers are in the totals too.
    metrics["mp_codec"], metrics["mp_grad_codec"] = mp_codec_names(cfg.dct.mp)
    for part in ("forward", "backward", "index"):
        metrics[f"mp_{part}_bytes_per_step"] = traffic[f"mp_{part}"].sent / metrics["steps"]
    return metrics
