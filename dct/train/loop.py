"""The training loop: hybrid-parallel DLRM on a global batch split across ranks."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import torch
from torch.distributed.checkpoint.stateful import Stateful
from tqdm import tqdm

from dct.checkpoint.manager import CheckpointManager
from dct.checkpoint.meta import grid
from dct.comm.collectives import all_reduce_sum
from dct.comm.meter import REPORTED, ByteMeter, ChannelBytes
from dct.config import RunConfig, resolve_steps
from dct.data.rank_batches import RankBatch, RankReader
from dct.data.sources import feature_layout, open_source, validation_rows
from dct.parallel.builder import build_model
from dct.parallel.hybrid import HybridModel
from dct.parallel.parallel_model import ParallelModel
from dct.parallel.topology import Topology
from dct.runtime import acceptance
from dct.runtime.faults import Diverged, Stopped, check_losses, likely_cause
from dct.train import compression_report
from dct.train.checkpoint_states import rank_states
from dct.train.density_report import DensityBand
from dct.train.early_stopping import EarlyStopping, StoppingCounters
from dct.train.evaluation import EvalResult, evaluate
from dct.train.memory_report import MemoryReport, memory_report
from dct.train.progress import TrainProgress
from dct.train.sinks import MetricSink
from dct.train.step_optimizers import Optimizers

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run produced. ``losses``: the global-batch mean loss of every step. ``step_times``:
    each training step's wall time on this rank, reading its batch excluded (``read_times``)."""

    model: ParallelModel
    losses: list[float]
    evaluation: EvalResult
    step_times: list[float]
    read_times: list[float]
    bytes_per_rank: dict[str, ChannelBytes]
    density_band: DensityBand
    memory: MemoryReport
    history: list[EvalResult] = field(default_factory=list)
    stopping: EarlyStopping | None = None
    stopped: bool = False


def _mean_bytes_per_rank(
    meter: ByteMeter, topology: Topology, device: torch.device
) -> dict[str, ChannelBytes]:
    """Each channel's totals averaged over ranks (read before this reduction adds its own bytes)."""
    totals = meter.totals()
    flat = torch.tensor(
        [float(v) for c in REPORTED for v in (totals[c].sent, totals[c].dense)],
        dtype=torch.float64,
        device=device,
    )
    all_reduce_sum(flat, topology.world_group, meter)
    flat /= topology.world_size
    return {
        c: ChannelBytes(round(flat[2 * i].item()), round(flat[2 * i + 1].item()))
        for i, c in enumerate(REPORTED)
    }


def _traffic_scalars(
    now: dict[str, ChannelBytes], before: dict[str, ChannelBytes], steps: int
) -> dict[str, float]:
    scalars: dict[str, float] = {}
    for channel in REPORTED:
        delta = now[channel] - before[channel]
        scalars[f"bytes/{channel}_sent_per_step"] = delta.sent / steps
        scalars[f"bytes/{channel}_dense_per_step"] = delta.dense / steps
        scalars[f"bytes/{channel}_ratio"] = delta.ratio
    return scalars


def _train_step(model: ParallelModel, optimizers: Optimizers, batch: RankBatch) -> torch.Tensor:
    """One optimizer step; returns this rank's summed (not averaged) loss, detached."""
    optimizers.zero_grad()
    loss_sum = model.train_step(batch)
    optimizers.step(model.take_table_gradients())
    return loss_sum


def _reader(
    cfg: RunConfig, topology: Topology, model: ParallelModel, device: torch.device
) -> RankReader:
    """Embedding mode: each rank its slice, its tables' ids for its MP group. Pipeline mode:
    every stage of a replica reads the replica's whole slice."""
    source, batch_size = open_source(cfg), cfg.train.batch_size
    layout = feature_layout(cfg.data)
    if cfg.parallel.mp_mode == "pipeline":
        return RankReader(
            source,
            batch_size,
            topology.dp_size,
            1,
            topology.dp_rank,
            model.owned_features,
            layout.feature_rows,
            device,
        )
    return RankReader(
        source,
        batch_size,
        topology.world_size,
        topology.mp_size,
        topology.rank,
        model.owned_features,
        layout.feature_rows,
        device,
    )


def train(
    cfg: RunConfig,
    topology: Topology,
    device: torch.device,
    sinks: Sequence[MetricSink] = (),
    show_progress: bool = False,
    run_dir: Path | None = None,
) -> TrainResult:
    """Train for ``cfg.train.steps`` steps, evaluating every ``eval_every`` steps and at the end.

    ``cfg`` as ``dct.data.sources.with_data_shape`` returns it (file data: its shape, its eval
    rows and its step count settled; synthetic data with no step count trains
    ``DEFAULT_STEPS``). Every rank must call this with the same ``cfg``; all of them return the
    same losses and evaluation results. With ``run_dir``, checkpoints are resumed from and saved as
    ``cfg.train`` says (``dct.checkpoint.manager``), and the sinks are rewound to the step
    resumed from.
    """
    # The one step count that the loop, the progress bar and the checkpoints all see.
    cfg = replace(cfg, train=resolve_steps(cfg.train))
    torch.manual_seed(cfg.seed)
    meter = ByteMeter()
    model = build_model(cfg, topology, meter, device)
    shards = [shard for shard, _ in model.table_blocks()]
    optimizers = Optimizers(
        cfg.optim,
        cfg.train.lr,
        model.dense_named_parameters(),
        model.tables,
        shards,
        model.fused,
    )
    reader = _reader(cfg, topology, model, device)
    steps, log_every, eval_every = cfg.train.steps, cfg.train.log_every, cfg.train.eval_every
    batch_size = cfg.train.batch_size
    band = DensityBand(cfg.dct.dp.density, cfg.dct.dp.guard_factor, model.dp_states)
    valid_size = validation_rows(cfg.data)
    stopping = EarlyStopping(model, cfg.train.patience) if valid_size else None
    checkpoints = None
    progress = TrainProgress()
    if run_dir is not None:
        shared: dict[str, Stateful] = {"model": model, "optim": optimizers}
        parts = rank_states(model, topology, shards, meter, band, progress)
        if stopping is not None:
            shared["best"], parts["stopping"] = stopping, StoppingCounters(stopping)
        checkpoints = CheckpointManager(
            cfg,
            run_dir,
            shared,
            parts,
            grid(cfg, topology, model.plan if isinstance(model, HybridModel) else None),
        )
        checkpoints.resume()
        for sink in sinks:
            sink.rewind(progress.step)
    # Config checked, checkpoint (if any) loaded: the run is accepted (dct.runtime.acceptance).
    acceptance.accept()
    pending: list[torch.Tensor] = []
    traffic_mark, compression_mark = meter.totals(), compression_report.snapshot(model)
    bar = tqdm(
        total=steps,
        initial=progress.step,
        disable=not show_progress,
        desc="train",
        unit="step",
        mininterval=1.0,
    )

    def scored(split: str, size: int, step: int) -> EvalResult:
        try:
            return evaluate(model, reader, size, meter, split)
        except Diverged as error:
            raise Diverged(f"{error} at step {step}. {likely_cause(cfg)}") from None

    try:
        first = steps + 1 if progress.stopped else progress.step + 1
        for step in range(first, steps + 1):
            started = time.perf_counter()
            batch = reader.read("train", step - 1)
            read = time.perf_counter()
            pending.append(_train_step(model, optimizers, batch))
            progress.step_times.append(time.perf_counter() - read)
            progress.read_times.append(read - started)
            progress.step = step
            bar.update()

            if step % log_every == 0 or step == steps:
                sums = all_reduce_sum(torch.stack(pending), topology.world_group, meter)
                interval = (sums / batch_size).tolist()
                check_losses(interval, step - len(interval) + 1, cfg)
                progress.losses.extend(interval)
                now = meter.totals()
                seconds = sum(progress.step_times[-len(interval) :])
                scalars = {
                    "train/loss": statistics.fmean(interval),
                    "train/samples_per_sec": batch_size * len(interval) / seconds,
                    **_traffic_scalars(now, traffic_mark, len(interval)),
                    **compression_report.interval_scalars(model, compression_mark),
                }
                band.observe(scalars)
                for sink in sinks:
                    sink.write(step, scalars)
                bar.set_postfix(loss=f"{scalars['train/loss']:.4f}")
                pending, traffic_mark = [], now
                compression_mark = compression_report.snapshot(model)

            if step % eval_every == 0 or step == steps:
                if stopping is not None:
                    valid = scored("valid", valid_size, step)
                    progress.stopped = stopping.observe(step, valid.logloss)
                    for sink in sinks:
                        sink.write(step, {"valid/auc": valid.auc, "valid/logloss": valid.logloss})
                    log.info(
                        "step %d: validation auc %.4f logloss %.4f (best: step %d)",
                        step,
                        valid.auc,
                        valid.logloss,
                        stopping.best_step,
                    )
                result = scored("eval", cfg.data.eval_size, step)
                progress.history.append(result)
                for sink in sinks:
                    sink.write(step, result.scalars())
                log.info("step %d: eval auc %.4f logloss %.4f", step, result.auc, result.logloss)
                # Per-step traffic scalars describe training steps only.
                traffic_mark, compression_mark = meter.totals(), compression_report.snapshot(model)
            # With early stopping the run's last checkpoint is saved after the restore below.
            last = step == steps or progress.stopped
            if checkpoints is not None and not (stopping is not None and last):
                checkpoints.save_if_due(step)
            if progress.stopped:
                log.info(
                    "step %d: %d evaluations without a lower validation log-loss: stopping",
                    step,
                    stopping.since_best,
                )
                break
    except Stopped as stop:
        raise stop.at(progress.step) from None
    finally:
        bar.close()
    evaluation = progress.history[-1]
    if stopping is not None:
        stopping.restore()
        evaluation = scored("eval", cfg.data.eval_size, progress.step)
        log.info(
            "restored step %d's weights (validation logloss %.4f): eval auc %.4f logloss %.4f",
            stopping.best_step,
            stopping.best_loss,
            evaluation.auc,
            evaluation.logloss,
        )
        if checkpoints is not None:
            checkpoints.save(progress.step, weights_step=stopping.best_step)
    memory = memory_report(model, optimizers, topology, meter, device)
    return TrainResult(
        model=model,
        losses=progress.losses,
        evaluation=evaluation,
        step_times=progress.step_times,
        read_times=progress.read_times,
        bytes_per_rank=_mean_bytes_per_rank(meter, topology, device),
        density_band=band,
        memory=memory,
        history=progress.history,
        stopping=stopping,
        stopped=progress.stopped,
    )
