"""``python -m dct.export CHECKPOINT OUT``: each user mistake ends in one line and exit code 2,
and a failed write leaves no ``OUT`` behind."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dct.export import main
from tests.full_disk import fill, tiny_disk
from tests.integration.test_launch import REPO, SMALL, launch
from tests.time_limit import scaled


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The step-4 checkpoint of a one-process run."""
    run_dir = tmp_path_factory.mktemp("run")
    args = [*SMALL, "train.steps=4", "train.checkpoint_every=4", "output.tensorboard=false"]
    done = launch([*args, f"hydra.run.dir={run_dir}"], nproc=None)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir / "checkpoints" / "step_00000004"


def export_error(caplog, checkpoint: Path, out: Path) -> str:
    """The one line ``main`` logs before it exits with code 2."""
    with caplog.at_level(logging.INFO, logger="dct.export"), pytest.raises(SystemExit) as ended:
        main([str(checkpoint), str(out)])
    assert ended.value.code == 2
    # DCP logs its own failures to a logger without a handler: not printed, but captured here.
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and not r.name.startswith("c10d")
    ]
    assert len(errors) == 1, errors
    assert errors[0].startswith("export error: ")
    return errors[0]


def test_out_a_directory_is_one_line(checkpoint, tmp_path):
    """``torch.save`` into a directory raises a ``RuntimeError``; checked before reading."""
    done = subprocess.run(
        [sys.executable, "-m", "dct.export", str(checkpoint), str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=REPO,
        timeout=scaled(120),
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"export error: {tmp_path} is a directory: give the file to write, e.g. "
        f"{tmp_path / 'model.pt'}"
    ]


def test_out_under_a_file_is_one_line(checkpoint, tmp_path, caplog):
    (tmp_path / "file").write_text("")
    line = export_error(caplog, checkpoint, tmp_path / "file" / "sub" / "model.pt")
    assert line.endswith(f"cannot write {tmp_path}/file/sub/model.pt: {tmp_path}/file is a file")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp / "nowhere", "{path}: no such checkpoint"),
        (lambda tmp: tmp, "{path} is not a checkpoint: it has no .metadata"),
        (lambda tmp: _file(tmp / "step_00000004"), "{path} is a file, not a checkpoint directory"),
    ],
    ids=["missing", "not-a-checkpoint", "a-file"],
)
def test_a_path_that_is_no_checkpoint_is_one_line(tmp_path, caplog, make, message):
    path = make(tmp_path)
    line = export_error(caplog, path, tmp_path / "model.pt")
    assert message.format(path=path) in line
    assert not (tmp_path / "model.pt").exists()


def test_a_damaged_checkpoint_is_one_line(checkpoint, tmp_path, caplog):
    damaged = tmp_path / "step_00000004"
    damaged.mkdir()
    for part in checkpoint.iterdir():
        data = part.read_bytes()
        (damaged / part.name).write_bytes(data[: len(data) // 2] if part.suffix else data)
    line = export_error(caplog, damaged, tmp_path / "model.pt")
    assert "is truncated" in line and ".distcp" in line
    assert not (tmp_path / "model.pt").exists()


def test_a_checkpoint_with_scrambled_data_is_one_line(checkpoint, tmp_path, caplog):
    """Every file whole, but the data bytes do not load: DCP's own exception, worded."""
    damaged = tmp_path / "step_00000004"
    damaged.mkdir()
    for part in checkpoint.iterdir():
        data = part.read_bytes()
        (damaged / part.name).write_bytes(b"\xff" * len(data) if part.suffix else data)
    line = export_error(caplog, damaged, tmp_path / "model.pt")
    assert line == f"export error: {damaged} is damaged: its data does not load (UnpicklingError)"
    assert not (tmp_path / "model.pt").exists()


def test_a_full_disk_leaves_no_out(checkpoint, tmp_path, caplog):
    with tiny_disk(tmp_path / "disk", size="256k") as disk:
        fill(disk, leave=64 * 1024)  # the model takes 6 MB
        line = export_error(caplog, checkpoint, disk / "model.pt")
        assert line == f"export error: cannot write {disk / 'model.pt'}: No space left on device"
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_missing_parents_of_out_are_created(checkpoint, tmp_path, caplog):
    out = tmp_path / "new" / "dir" / "model.pt"
    with caplog.at_level(logging.INFO, logger="dct.export"):
        main([str(checkpoint), str(out)])
    assert out.is_file() and f"wrote {out}" in caplog.text


def _file(path: Path) -> Path:
    path.write_text("")
    return path
