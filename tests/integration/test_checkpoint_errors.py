"""Checkpoints a run cannot use end it with one line naming the file and what is wrong.

Every kind of damage and mismatch is checked in ``tests/unit/test_checkpoint_store.py`` and
``tests/unit/test_checkpoint_meta.py``; here, the real entry point turns them into one line and
exit code 2, or skips a damaged newest checkpoint when resuming automatically (and starts
over, keeping them aside, when every one is damaged); a full disk on save is one line too."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.full_disk import tiny_disk
from tests.integration.test_launch import SMALL, launch

CHECKPOINTED = [*SMALL, "output.tensorboard=false", "train.checkpoint_every=4"]


def train(*args: str) -> subprocess.CompletedProcess:
    return launch([*CHECKPOINTED, *args], nproc=None)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """A one-process run of 12 steps: checkpoints at steps 8 and 12 are kept."""
    run_dir = tmp_path_factory.mktemp("written")
    done = train(f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def one_error_line(done: subprocess.CompletedProcess) -> str:
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert done.returncode == 2, output[-3000:]
    assert len(errors) == 1 and "Traceback" not in output, output[-3000:]
    return errors[0]


@pytest.mark.parametrize(
    "target, overrides, message",
    [
        (
            "checkpoints/step_00000008",
            ["model.top_mlp=[32]"],
            "was written for another model: model.top_mlp=[64, 32] there, [32] here",
        ),
    ],
    ids=["other-model"],
)
def test_unusable_checkpoint_is_one_line(written, tmp_path, target, overrides, message):
    args = [*overrides, f"train.resume={written / target}"]
    line = one_error_line(train(*args, f"hydra.run.dir={tmp_path}"))
    assert "checkpoint error: " in line and message in line
    assert not (tmp_path / "metrics.json").exists()


def test_damaged_checkpoint_named_by_path_is_one_line(written, tmp_path):
    damaged = tmp_path / "step_00000008"
    damaged.mkdir()
    for part in (written / "checkpoints" / "step_00000008").iterdir():
        data = part.read_bytes()
        (damaged / part.name).write_bytes(data[: len(data) // 2] if part.suffix else data)
    line = one_error_line(train(f"train.resume={damaged}", f"hydra.run.dir={tmp_path}"))
    assert "is truncated" in line and "__0_0.distcp" in line


def test_auto_resume_skips_a_damaged_newest_checkpoint(written, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    subprocess.run(["cp", "-r", str(written / "checkpoints"), str(run_dir)], check=True)
    newest = next((run_dir / "checkpoints" / "step_00000012").glob("*.distcp"))
    os.truncate(newest, 100)
    done = train(f"hydra.run.dir={run_dir}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "skipping checkpoint" in output and "is truncated" in output
    assert "resumed from checkpoint" in output and "at step 8" in output


def test_auto_resume_with_every_checkpoint_damaged_starts_over(written, tmp_path):
    """The reference is the run that never had checkpoints (``written``): starting over must
    train exactly as it did, and leave the damaged checkpoints aside, not overwrite them."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    subprocess.run(["cp", "-r", str(written / "checkpoints"), str(run_dir)], check=True)
    checkpoints = run_dir / "checkpoints"
    damaged = {}
    for step in ("step_00000008", "step_00000012"):
        data = next((checkpoints / step).glob("*.distcp"))
        os.truncate(data, 100)
        damaged[step] = {p.name: p.read_bytes() for p in (checkpoints / step).iterdir()}
    done = train(f"hydra.run.dir={run_dir}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    warnings = [line for line in output.splitlines() if "starts over from step 0" in line]
    assert len(warnings) == 1 and "is truncated" in warnings[0], output[-3000:]
    assert "resumed from checkpoint" not in output
    for step, files in damaged.items():
        aside = checkpoints / f"{step}.damaged"
        assert {p.name: p.read_bytes() for p in aside.iterdir()} == files
        assert (checkpoints / step / ".metadata").is_file()  # saved afresh beside it
    fresh = json.loads((run_dir / "metrics.json").read_text())
    reference = json.loads((written / "metrics.json").read_text())
    for key in ("auc", "logloss", "final_train_loss", "steps", "dp_bytes_sent"):
        assert fresh[key] == reference[key], key


def test_a_full_disk_on_save_is_one_line_and_leaves_no_partial(written, tmp_path):
    with tiny_disk(tmp_path / "disk", size="64k") as disk:
        line = one_error_line(
            train(f"train.checkpoint_dir={disk}", f"hydra.run.dir={tmp_path / 'run'}")
        )
        assert f"no space left on {disk}: step 4's checkpoint did not fit" in line
        assert list(disk.iterdir()) == []
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_checkpoint_dir_that_takes_no_files_is_one_line(written, tmp_path):
    not_a_dir = written / "metrics.json"
    args = [f"train.checkpoint_dir={not_a_dir}/checkpoints", f"hydra.run.dir={tmp_path}"]
    line = one_error_line(train(*args))
    assert f"train.checkpoint_dir={not_a_dir}/checkpoints cannot hold checkpoints" in line
