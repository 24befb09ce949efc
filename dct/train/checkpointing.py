"""Checkpoints in the training loop: resume at start, save every ``train.checkpoint_every`` steps.

``train.resume=auto`` loads the newest complete checkpoint of the checkpoint directory (damaged
newer ones are skipped with a warning), so workers that ``torchrun --max-restarts`` starts again
after a failure continue from it with no user action: torchrun keeps the run id, and with it
the run directory. ``train.resume=PATH`` loads that checkpoint or stops with one line saying
what is wrong with it; ``never`` starts fresh. Rank 0 picks the checkpoint and tells the
others, so every rank loads the same one or stops with the same message.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException

from dct.checkpoint import dcp_io
from dct.checkpoint.run_state import META, RunState, check_meta
from dct.checkpoint.store import CheckpointError, CheckpointStore, check_complete
from dct.config import RunConfig, checkpoint_every
from dct.train.progress import TrainProgress

log = logging.getLogger(__name__)


def checkpoint_root(cfg: RunConfig, run_dir: Path) -> Path:
    directory = cfg.train.checkpoint_dir
    return run_dir / "checkpoints" if directory is None else Path(directory)


class Checkpointing:
    """Example::

    checkpoints = Checkpointing(cfg, run_dir, RunState(cfg, topology, model, ...))
    progress = checkpoints.resume() or TrainProgress()
    ... after each step: checkpoints.after_step(progress)
    """

    def __init__(self, cfg: RunConfig, run_dir: Path, state: RunState) -> None:
        self.cfg, self.state = cfg, state
        self.every = checkpoint_every(cfg.train)
        self.store = CheckpointStore(checkpoint_root(cfg, run_dir), cfg.train.keep_checkpoints)
        self.lead = state.topology.rank == 0

    def resume(self) -> TrainProgress | None:
        """The progress of the checkpoint ``train.resume`` names, its state loaded; ``None`` to
        start fresh."""
        path = _agree(self._choose if self.lead else None)
        if path is None:
            return None
        started = time.perf_counter()
        meta = {META: None}
        _read(meta, path)
        meta = meta[META]
        check_meta(meta, self.cfg, path / dcp_io.METADATA_FILE)
        entries = self.state.load_entries(meta)
        _read(entries, path)
        progress = self.state.apply(entries, meta)
        grid = meta["grid"]
        log.info(
            "resumed from checkpoint %s at step %d (written by %d ranks, mp_size %d, %s; %.1f s)",
            path,
            progress.step,
            grid["world_size"],
            grid["mp_size"],
            "this grid" if self.state.same_grid(meta) else "another grid: resharded",
            time.perf_counter() - started,
        )
        return progress

    def _choose(self) -> Path | None:
        """Rank 0: prepare the checkpoint directory if this run saves, and pick the checkpoint
        to load (``CheckpointError`` if the directory cannot be written or the checkpoint named
        is unusable)."""
        if self.every:
            self._prepare()
        resume = self.cfg.train.resume
        if resume == "never":
            return None
        if resume == "auto":
            return self.store.latest()
        path = Path(resume)
        check_complete(path)
        return path

    def _prepare(self) -> None:
        """Create the directory, check it takes files, remove what killed saves left."""
        root = self.store.root
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / ".writable"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise CheckpointError(
                f"train.checkpoint_dir={root} cannot hold checkpoints: {error.strerror}"
            ) from None
        self.store.clear_leftovers()

    def after_step(self, progress: TrainProgress) -> None:
        """Save if ``progress.step`` is a checkpoint step (every ``checkpoint_every``, and the
        last step when checkpointing is on)."""
        step = progress.step
        if not self.every or (step % self.every and step != self.cfg.train.steps):
            return
        started = time.perf_counter()
        try:
            dcp_io.save(self.state.save_entries(progress), self.store.partial(step))
        except CheckpointException as error:
            cause = _first_failure(error)
            raise CheckpointError(
                f"step {step}: saving {self.store.partial(step)} failed: {cause}"
            ) from None
        if self.lead:
            path = self.store.publish(step)
            log.info("step %d: checkpoint %s (%.1f s)", step, path, time.perf_counter() - started)
        dist.barrier()


def _read(entries: dict[str, Any], path: Path) -> None:
    """``dcp_io.load``, its failure (on any rank) as one ``CheckpointError``."""
    try:
        dcp_io.load(entries, path)
    except CheckpointException as error:
        raise CheckpointError(f"{path} cannot be loaded here: {_first_failure(error)}") from None


def _first_failure(error: CheckpointException) -> str:
    """The first line of the first rank's failure inside DCP."""
    failures = [exception for exception, _ in error.failures.values()]
    return str(failures[0] if failures else error).strip().splitlines()[0]


def _agree(choose: Any) -> Path | None:
    """Rank 0 runs ``choose``; every rank returns its path or raises its ``CheckpointError``."""
    message: list[Any] = [None]
    if choose is not None:
        try:
            path = choose()
            message = [("path", None if path is None else str(path))]
        except CheckpointError as error:
            message = [("error", str(error))]
    dist.broadcast_object_list(message, src=0)
    kind, value = message[0]
    if kind == "error":
        raise CheckpointError(value)
    return None if value is None else Path(value)
