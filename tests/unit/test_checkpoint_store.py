"""Which checkpoints count: complete ones only, the newest first, at most ``keep`` of them."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from dct.checkpoint.dcp_io import save
from dct.checkpoint.store import (
    CheckpointError,
    CheckpointStore,
    check_complete,
    no_space_left,
)
from tests.full_disk import fill, tiny_disk


def write(store: CheckpointStore, step: int) -> None:
    save({"w": torch.full((1000,), float(step))}, store.partial(step))
    store.publish(step)


@pytest.fixture
def store(tmp_path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints", keep=2)


def test_publish_keeps_the_newest(store):
    for step in (10, 20, 30):
        write(store, step)
    assert [p.name for p in store.published()] == ["step_00000020", "step_00000030"]
    assert store.latest() == store.root / "step_00000030"
    assert not list(store.root.glob("*.partial")) and not list(store.root.glob("*.deleting"))


def test_an_unfinished_save_does_not_count_and_is_cleared(store):
    write(store, 10)
    save({"w": torch.zeros(3)}, store.partial(20))  # killed before publishing
    (store.root / "step_00000030.deleting").mkdir()  # killed while removing
    assert store.latest() == store.root / "step_00000010"
    store.clear_leftovers()
    assert sorted(p.name for p in store.root.iterdir()) == ["step_00000010"]


def test_latest_skips_a_damaged_newest_with_a_warning(store, caplog):
    write(store, 10)
    write(store, 20)
    data = next((store.root / "step_00000020").glob("*.distcp"))
    os.truncate(data, data.stat().st_size // 2)
    with caplog.at_level(logging.WARNING):
        assert store.latest() == store.root / "step_00000010"
    assert "skipping checkpoint" in caplog.text and "truncated" in caplog.text


def test_no_checkpoint_at_all(store):
    assert store.latest() is None


def _contents(path):
    return {p.name: p.read_bytes() for p in path.iterdir()}


def test_when_every_checkpoint_is_damaged_they_are_set_aside(store, caplog):
    """Nothing to resume from: one warning that the run starts over and why; the damaged
    checkpoints keep their bytes under names ``latest`` never picks, and a name already taken
    by an earlier damaged one is not overwritten."""
    write(store, 10)
    write(store, 20)
    data = next((store.root / "step_00000020").glob("*.distcp"))
    os.truncate(data, 10)
    (store.root / "step_00000010" / ".metadata").write_bytes(b"not a pickle")
    earlier = store.root / "step_00000010.damaged"
    earlier.mkdir()
    (earlier / "kept").write_bytes(b"an earlier run's")
    before = {p.name: _contents(p) for p in store.published()}
    with caplog.at_level(logging.WARNING):
        assert store.latest() is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "starts over from step 0" in warnings[0]
    assert "step_00000010 as step_00000010.damaged.1 (" in warnings[0]
    assert ".metadata is damaged" in warnings[0]
    assert "step_00000020 as step_00000020.damaged (" in warnings[0] and "truncated" in warnings[0]
    assert store.published() == []
    assert _contents(store.root / "step_00000010.damaged.1") == before["step_00000010"]
    assert _contents(store.root / "step_00000020.damaged") == before["step_00000020"]
    assert _contents(earlier) == {"kept": b"an earlier run's"}
    store.clear_leftovers()  # a later save's clean-up keeps them too
    write(store, 10)
    assert store.latest() == store.root / "step_00000010"
    assert (store.root / "step_00000010.damaged.1").is_dir()


def test_no_space_left_is_told_from_room_to_spare(tmp_path):
    assert not no_space_left(tmp_path)
    with tiny_disk(tmp_path / "disk", size="4m") as disk:
        assert not no_space_left(disk)
        fill(disk)
        assert no_space_left(disk)
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # the probe is gone


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.with_name("nowhere"), "no such checkpoint"),
        (lambda p: p / ".metadata", "is a file, not a checkpoint directory"),
        (lambda p: p.parent, "has no .metadata"),
        (lambda p: _unlink(p / ".metadata", p), "has no .metadata"),
        (lambda p: _overwrite(p / ".metadata", p), ".metadata is damaged"),
        (lambda p: _unlink(next(p.glob("*.distcp")), p), "is missing"),
        (lambda p: _truncate(next(p.glob("*.distcp")), p), "is truncated"),
        (lambda p: _rename(p, "step_00000010.partial"), "did not finish"),
    ],
    ids=[
        "missing",
        "a-file",
        "not-a-checkpoint",
        "no-metadata",
        "damaged-metadata",
        "missing-data",
        "truncated-data",
        "partial",
    ],
)
def test_unusable_checkpoints_are_named_with_what_is_wrong(store, damage, message):
    write(store, 10)
    path = damage(store.root / "step_00000010")
    with pytest.raises(CheckpointError, match=message):
        check_complete(path)


def _unlink(file, path):
    file.unlink()
    return path


def _overwrite(file, path):
    file.write_bytes(b"not a pickle")
    return path


def _truncate(file, path):
    os.truncate(file, 10)
    return path


def _rename(path, name):
    return path.rename(path.with_name(name))
