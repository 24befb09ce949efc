"""The checkpoint manager saves and loads whatever parts it is handed, and a save that fails
(a full disk above all) removes what it half wrote and says why in one line on every rank.

The parts here are small stand-ins that answer ``state_dict()`` / ``load_state_dict()``, not
the training loop's: the manager knows no training class. The reference for a load is what
was saved; for a failed save, the directory as it was before the save.
"""

from __future__ import annotations

import errno
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint import FileSystemWriter

from dct.checkpoint.manager import CheckpointManager
from dct.checkpoint.store import CheckpointError
from dct.config import RunConfig
from tests.distributed.spawn import run_ranks
from tests.full_disk import fill, tiny_disk

STEPS = 4


class Weights:
    """A shared part: one tensor every rank holds alike (saved once)."""

    def __init__(self, values: torch.Tensor) -> None:
        self.values = values

    def state_dict(self) -> dict[str, Any]:
        return {"values": self.values}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.values.copy_(state["values"])


class Count:
    """A rank's own part: a number and a list."""

    def __init__(self, n: int = 0) -> None:
        self.n, self.seen = n, [n]

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n, "seen": list(self.seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n, self.seen = state["n"], list(state["seen"])


def config(checkpoint_dir: str, resume: str = "auto") -> RunConfig:
    cfg = RunConfig()
    return replace(
        cfg,
        train=replace(
            cfg.train,
            steps=STEPS,
            log_every=2,
            checkpoint_every=2,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
        ),
    )


GRID = {"world_size": 2, "mp_size": 1, "mp_mode": "embedding", "cuts": [], "plan": None}


def manager(checkpoint_dir: str, weights: Weights, count: Count) -> CheckpointManager:
    cfg = config(checkpoint_dir)
    return CheckpointManager(cfg, Path("unused"), {"w": weights}, {"count": count}, GRID)


def save_then_resume(checkpoint_dir: str) -> dict[str, Any]:
    rank = dist.get_rank()
    weights, count = Weights(torch.arange(6.0) * 7), Count(10 + rank)
    saver = manager(checkpoint_dir, weights, count)
    assert saver.resume() == 0  # nothing to resume from yet
    saver.save_if_due(2)
    fresh_weights, fresh_count = Weights(torch.zeros(6)), Count()
    step = manager(checkpoint_dir, fresh_weights, fresh_count).resume()
    return {"step": step, "weights": fresh_weights.values, "count": fresh_count.state_dict()}


def test_the_parts_handed_over_come_back(tmp_path):
    ranks = run_ranks(2, save_then_resume, str(tmp_path / "checkpoints"), tmp_dir=tmp_path)
    for rank, result in enumerate(ranks):
        assert result["step"] == 2
        assert torch.equal(result["weights"], torch.arange(6.0) * 7)
        assert result["count"] == {"n": 10 + rank, "seen": [10 + rank]}


def save_failing(checkpoint_dir: str, payload: int, inject: bool) -> dict[str, Any]:
    """Save ``payload`` bytes at the last step: the error each rank raises, if any, and what
    the checkpoint directory holds afterwards. ``inject``: every write fails with ENOSPC
    after leaving a few bytes, as a full disk does."""
    if inject:

        def full_disk_write(self: FileSystemWriter, plan: Any, planner: Any) -> Any:
            Path(self.path, f"__{dist.get_rank()}_0.distcp").write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")

        FileSystemWriter.write_data = full_disk_write  # this rank's process only
    weights = Weights(torch.ones(payload // 4))
    checkpoints = manager(checkpoint_dir, weights, Count())
    checkpoints.resume()
    try:
        checkpoints.save_if_due(STEPS)
    except CheckpointError as error:
        message = str(error)
    else:
        message = None
    return {"message": message, "left": sorted(p.name for p in Path(checkpoint_dir).iterdir())}


def assert_one_line_and_nothing_left(ranks: list[dict[str, Any]], directory: Path) -> None:
    for result in ranks:
        message = result["message"]
        assert message is not None and "\n" not in message
        assert message.startswith(f"no space left on {directory}: step {STEPS}'s checkpoint")
        assert "step_00000004.partial was removed" in message
        assert result["left"] == []  # the half-written save is gone, nothing else was there
    assert ranks[0]["message"] == ranks[1]["message"]


def test_a_full_disk_is_named_and_the_half_written_save_removed(tmp_path):
    """ENOSPC from the writer, as on a full disk (the real one is below, where root can mount)."""
    directory = tmp_path / "checkpoints"
    ranks = run_ranks(2, save_failing, str(directory), 4096, True, tmp_dir=tmp_path)
    assert_one_line_and_nothing_left(ranks, directory)


def test_a_real_full_disk(tmp_path):
    """A tmpfs with room for the directory but not for a 1 MB save."""
    with tiny_disk(tmp_path / "disk", size="64k") as disk:
        directory = disk / "checkpoints"
        directory.mkdir()
        fill(disk, leave=16 * 1024)
        ranks = run_ranks(2, save_failing, str(directory), 1 << 20, False, tmp_dir=tmp_path)
        assert_one_line_and_nothing_left(ranks, directory)


def test_a_save_that_fits_is_not_called_full(tmp_path):
    """The reference: the same save with room to spare succeeds."""
    with tiny_disk(tmp_path / "disk", size="8m") as disk:
        directory = disk / "checkpoints"
        directory.mkdir()
        ranks = run_ranks(2, save_failing, str(directory), 1 << 20, False, tmp_dir=tmp_path)
        for result in ranks:
            assert result["message"] is None and result["left"] == ["step_00000004"]
