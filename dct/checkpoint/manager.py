"""A run's checkpoints: resume at start, save every ``train.checkpoint_every`` steps.

The trainer hands over the parts that hold state, each answering ``state_dict()`` and
``load_state_dict()`` (PyTorch's ``Stateful``), as torchtitan's trainer hands ``states`` to its
``CheckpointManager``; this module knows none of their classes. ``states`` are the parts every
rank holds a piece of (the model, the optimizers): their entries are global tensors or row
blocks, loaded in place and resharded by DCP, saved once however many replicas hold them.
``rank_states`` belong to one rank (random state, DCT-DP states, counters, progress): they are
saved under ``rank/<r>``. On another grid, rank ``r`` continues old rank ``r % old_world``'s,
except a part that answers ``load_from_grid`` (``Regriddable``), which is given every old rank's.

``train.resume=auto`` loads the newest complete checkpoint of the checkpoint directory (damaged
newer ones are skipped with a warning; when every one is damaged they are set aside as
``.damaged`` and the run starts over, saying so), so workers that ``torchrun --max-restarts``
starts again after a failure continue from it with no user action: torchrun keeps the run id,
and with it the run directory. ``train.resume=PATH`` loads that checkpoint or stops with one
line saying what is wrong with it; ``never`` starts fresh. Rank 0 picks the checkpoint and
tells the others, so every rank loads the same one or stops with the same message. A save that
fails removes what it half wrote and stops the run with one line (``no space left on DIR``
when the disk is full).
"""

from __future__ import annotations

import errno
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.stateful import Stateful

from dct.checkpoint import dcp_io
from dct.checkpoint.meta import FORMAT, META, check_meta, data_record, fingerprint
from dct.checkpoint.store import CheckpointError, CheckpointStore, check_complete, no_space_left
from dct.config import RunConfig, checkpoint_every, resolve_steps

log = logging.getLogger(__name__)


@runtime_checkable
class Regriddable(Protocol):
    """A rank state that another grid rebuilds from every old rank's (DCT-DP residuals)."""

    def load_from_grid(self, old: Sequence[Any], grid: Mapping[str, Any]) -> None: ...


def checkpoint_root(cfg: RunConfig, run_dir: Path) -> Path:
    directory = cfg.train.checkpoint_dir
    return run_dir / "checkpoints" if directory is None else Path(directory)


def rank_key(rank: int) -> str:
    return f"rank/{rank}"


class CheckpointManager:
    """Checkpoints of ``states`` and ``rank_states`` (see the module), written on ``grid``
    (``dct.checkpoint.meta.grid``). Every rank must construct it and call it alike.

    Example::

        progress = TrainProgress()
        checkpoints = CheckpointManager(
            cfg, run_dir, {"model": model, "optim": optimizers},
            {"rng": RandomState(), "progress": progress}, grid(cfg, topology, plan),
        )
        checkpoints.resume()  # fills the states; progress.step is the step to go on from
        ... after each step: checkpoints.save_if_due(step)
    """

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        states: Mapping[str, Stateful],
        rank_states: Mapping[str, Stateful],
        grid: dict[str, Any],
    ) -> None:
        self.cfg, self.grid = cfg, grid
        self.data = data_record(cfg)
        self.last_step = resolve_steps(cfg.train).steps
        self.states, self.rank_states = dict(states), dict(rank_states)
        self.every = checkpoint_every(cfg.train)
        self.store = CheckpointStore(checkpoint_root(cfg, run_dir), cfg.train.keep_checkpoints)
        self.rank = dist.get_rank()
        self.lead = self.rank == 0

    def _shared(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The shared states' entries, ``<state>/<key>``, and each state's keys."""
        entries, keys = {}, {}
        for name, state in self.states.items():
            saved = state.state_dict()
            keys[name] = list(saved)
            entries.update({f"{name}/{key}": value for key, value in saved.items()})
        return entries, keys

    def resume(self) -> int:
        """Load the checkpoint ``train.resume`` names into the states; the step it was written
        at, 0 to start fresh."""
        path = _agree(self._choose if self.lead else None)
        if path is None:
            return 0
        started = time.perf_counter()
        meta = {META: None}
        _read(meta, path)
        meta = meta[META]
        check_meta(meta, self.cfg, path / dcp_io.METADATA_FILE)
        old_grid = meta["grid"]
        same_grid = old_grid == self.grid
        entries, keys = self._shared()
        # The rank records needed: this rank's own on the same grid, every old rank's on another.
        old_ranks = [self.rank] if same_grid else range(old_grid["world_size"])
        for rank in old_ranks:
            entries[rank_key(rank)] = None
        _read(entries, path)
        for name, state in self.states.items():
            state.load_state_dict({key: entries[f"{name}/{key}"] for key in keys[name]})
        own = entries[rank_key(self.rank % old_grid["world_size"])]
        for name, state in self.rank_states.items():
            if not same_grid and isinstance(state, Regriddable):
                old = [entries[rank_key(rank)].get(name) for rank in old_ranks]
                state.load_from_grid(old, old_grid)
            elif name in own:  # else the part was off when the checkpoint was written
                state.load_state_dict(own[name])
        log.info(
            "resumed from checkpoint %s at step %d (written by %d ranks, mp_size %d, %s; %.1f s)",
            path,
            meta["step"],
            old_grid["world_size"],
            old_grid["mp_size"],
            "this grid" if same_grid else "another grid: resharded",
            time.perf_counter() - started,
        )
        return meta["step"]

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
            if error.errno == errno.ENOSPC:
                raise CheckpointError(f"no space left on {root} (train.checkpoint_dir)") from None
            raise CheckpointError(
                f"train.checkpoint_dir={root} cannot hold checkpoints: {error.strerror}"
            ) from None
        self.store.clear_leftovers()

    def save_if_due(self, step: int) -> None:
        """Save if ``step`` is a checkpoint step (every ``checkpoint_every``, and the last step
        when checkpointing is on)."""
        if self.every and (step % self.every == 0 or step == self.last_step):
            self.save(step)

    def save(self, step: int, weights_step: int | None = None) -> None:
        """Save now, as step ``step``, if checkpointing is on; ``weights_step``: the step whose
        weights the model holds, where it is not ``step`` (the run's end, after early stopping
        restored its best evaluation's), recorded in ``meta``."""
        if not self.every:
            return
        started = time.perf_counter()
        entries, _ = self._shared()
        entries[rank_key(self.rank)] = {
            name: state.state_dict() for name, state in self.rank_states.items()
        }
        if self.lead:
            entries[META] = {
                "format": FORMAT,
                "step": step,
                "fingerprint": fingerprint(self.cfg),
                "grid": self.grid,
                "data": self.data,
            }
            if weights_step is not None:
                entries[META]["weights_step"] = weights_step
        try:
            dcp_io.save(entries, self.store.partial(step))
        except CheckpointException as error:
            # DCP raises on every rank once all have written: rank 0 cleans up and words it.
            message = [self._failed_save(step, error) if self.lead else None]
            dist.broadcast_object_list(message, src=0)
            raise CheckpointError(message[0]) from None
        if self.lead:
            path = self.store.publish(step)
            log.info("step %d: checkpoint %s (%.1f s)", step, path, time.perf_counter() - started)
        dist.barrier()

    def _failed_save(self, step: int, error: CheckpointException) -> str:
        """Rank 0: remove the half-written save; the line that says why it failed."""
        root, partial = self.store.root, self.store.partial(step)
        # A full disk often surfaces as a short write inside torch's writer ("unexpected pos
        # 704 vs 598"), not as ENOSPC: the probe tells it, and the line names the cause alone.
        full = _raised_no_space(error) or no_space_left(root)
        shutil.rmtree(partial, ignore_errors=True)
        if full:
            return (
                f"no space left on {root}: step {step}'s checkpoint did not fit; the "
                f"half-written {partial.name} was removed (free space there, or set "
                "train.checkpoint_dir elsewhere)"
            )
        cause = _first_failure(error)
        return f"step {step}: saving {partial} failed: {cause} (the half-written save was removed)"


def _read(entries: dict[str, Any], path: Path) -> None:
    """``dcp_io.load``, its failure (on any rank) as one ``CheckpointError``."""
    try:
        dcp_io.load(entries, path)
    except CheckpointException as error:
        raise CheckpointError(f"{path} cannot be loaded here: {_first_failure(error)}") from None


def _failures(error: CheckpointException) -> list[BaseException]:
    return [exception for exception, _ in error.failures.values()]


def _first_failure(error: CheckpointException) -> str:
    """The first line of the first rank's failure inside DCP."""
    failures = _failures(error)
    return str(failures[0] if failures else error).strip().splitlines()[0]


def _raised_no_space(error: CheckpointException) -> bool:
    """Whether any rank's failure, or what caused it, is ENOSPC."""
    for failure in _failures(error):
        seen: BaseException | None = failure
        while seen is not None:
            if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
                return True
            seen = seen.__cause__ or seen.__context__
    return False


def _agree(choose: Callable[[], Path | None] | None) -> Path | None:
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
