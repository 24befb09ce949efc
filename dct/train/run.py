"""One training run inside a started process group: build, train, report."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.distributed as dist

from dct.config import RunConfig, mp_codec_names, validate
from dct.data.sources import with_data_shape
from dct.parallel.topology import Topology, grid_shape
from dct.train.compression_report import DP_HOOKS
from dct.train.loop import train
from dct.train.sinks import open_sinks, write_json_atomically
from dct.train.summary import summary_metrics

log = logging.getLogger(__name__)


def run(cfg: RunConfig, run_dir: Path, device: torch.device) -> dict[str, object]:
    """Train as ``cfg`` says; rank 0 writes TensorBoard, ``metrics.jsonl`` and ``metrics.json``.

    Example::

        with distributed("auto", timeout_s=300) as backend:
            metrics = run(RunConfig(), Path("outputs/run"), backend.device)
    """
    world_size = dist.get_world_size()
    validate(cfg, world_size)
    cfg = with_data_shape(cfg)
    shape = grid_shape(cfg, world_size)
    topology = Topology(shape, device.type)
    lead = topology.rank == 0
    log.info(
        "grid: %d ranks = %d data-parallel x %d model-parallel; run directory %s",
        world_size,
        shape.dp_size,
        shape.mp_size,
        run_dir,
    )
    no_gradient_sync = world_size == 1 or (
        cfg.parallel.mp_mode == "pipeline" and shape.dp_size == 1
    )
    for setting, chosen in (
        ("dct.dp.enabled=true", cfg.dct.dp.enabled),
        (f"dp_hook.name={cfg.dp_hook.name}", cfg.dp_hook.name != "allreduce"),
    ):
        if chosen and no_gradient_sync:
            log.warning(
                "%s has no effect: no model replica, so no gradient crosses a network", setting
            )
    if mp_codec_names(cfg.dct.mp) != ("dense", "dense") and shape.mp_size == 1:
        log.warning("dct.mp has no effect with parallel.mp_size=1: no activation crosses a network")
    sinks = open_sinks(run_dir, cfg.output.tensorboard) if lead else []
    try:
        show_progress = lead and cfg.output.progress_bar
        result = train(cfg, topology, device, sinks, show_progress, run_dir)
    finally:
        for sink in sinks:
            sink.close()
    metrics = summary_metrics(result, cfg, topology)
    if lead:
        write_json_atomically(run_dir / "metrics.json", metrics)
        if metrics["dp_achieved_density"] is not None:
            _log_dct_dp(metrics, cfg.dct.dp.density)
            for warning in result.density_band.warnings():
                log.warning(warning)
        if metrics["mp_kept_fraction"] is not None:
            where = (
                f"{len(cfg.parallel.cuts)} pipeline cut(s)"
                if cfg.parallel.mp_mode == "pipeline"
                else f"the embedding all-to-all, {cfg.dct.mp.granularity} granularity"
            )
            log.info(
                "dct-mp on rank 0: kept %.4f of the activations (density %g, %s)",
                metrics["mp_kept_fraction"],
                cfg.dct.mp.density,
                where,
            )
        if metrics["mp_bytes_sent"]:
            _log_mp_parts(metrics)
        log.info(
            "auc %.4f (bayes auc %s), logloss %.4f | bytes per rank: dp %d sent / %d dense, "
            "mp %d sent / %d dense (ratios %.2f, %.2f) | %.0f samples/s | %s",
            metrics["auc"],
            _fmt(metrics["bayes_auc"]),
            metrics["logloss"],
            metrics["dp_bytes_sent"],
            metrics["dp_bytes_dense"],
            metrics["mp_bytes_sent"],
            metrics["mp_bytes_dense"],
            metrics["dp_ratio"],
            metrics["mp_ratio"],
            metrics["samples_per_sec"],
            run_dir / "metrics.json",
        )
    return metrics


def _log_mp_parts(metrics: dict[str, object]) -> None:
    """Rank-averaged model-parallel bytes per training step by direction and codec."""
    share = metrics["mp_dedup_share"]
    log.info(
        "mp bytes per rank and step: activations %.0f (%s), gradients %.0f (%s), sample index "
        "%.0f%s",
        metrics["mp_forward_bytes_per_step"],
        metrics["mp_codec"],
        metrics["mp_backward_bytes_per_step"],
        metrics["mp_grad_codec"],
        metrics["mp_index_bytes_per_step"],
        "" if share is None else f"; de-duplication left out {share:.1%} of the rows",
    )


def _log_dct_dp(metrics: dict[str, object], density: float) -> None:
    """Rank 0's DCT-DP: each hook's achieved density and the guard's cost, then the totals."""
    for hook in DP_HOOKS:
        achieved = metrics[f"dp_{hook}_achieved_density"]
        if achieved is not None:
            log.info(
                "dct-dp %s on rank 0: achieved density %.5f (%.2fx the target %g), %.0f threshold "
                "estimates per 1,000 steps, %.2f ms a step selecting and %.2f packing and "
                "unpacking, %d logging intervals outside the density band",
                hook,
                achieved,
                achieved / density,
                density,
                metrics[f"dp_{hook}_estimates_per_1k_steps"],
                metrics[f"dp_{hook}_select_ms_per_step"],
                metrics[f"dp_{hook}_pack_ms_per_step"],
                metrics[f"dp_{hook}_intervals_outside_band"],
            )
    log.info(
        "dct-dp on rank 0: %d threshold estimates, %d of them by the density guard (%d above the "
        "band, %d below), %d exchanges sent dense",
        metrics["dp_threshold_estimates"],
        metrics["dp_guard_over"] + metrics["dp_guard_under"],
        metrics["dp_guard_over"],
        metrics["dp_guard_under"],
        metrics["dp_dense_fallbacks"],
    )


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.4f}"
