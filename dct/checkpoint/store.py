"""A run's checkpoint directory: where checkpoints go, which count, which to resume from.

Layout: ``CHECKPOINT_DIR/step_00000050/``, one DCP checkpoint per directory. A save writes
``step_00000050.partial/`` and renames it when every rank has written and DCP's metadata file
is in place (rank 0 writes that last), so a directory without ``.partial`` is complete unless
its files were damaged later; a save killed half-way leaves only a ``.partial`` directory, which
is ignored and removed by the next save. Old checkpoints beyond ``keep`` are renamed to
``.deleting`` before removal, so a kill during the removal cannot leave something that looks
like a checkpoint. When no checkpoint is complete, ``latest`` renames every damaged one to
``.damaged`` (``.damaged.1``, ... if taken): kept for inspection, never overwritten by the run
that starts over, never picked again. The directory must be one every rank sees (a shared
filesystem across nodes).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from pathlib import Path

from dct.checkpoint.dcp_io import METADATA_FILE, read_metadata

log = logging.getLogger(__name__)

PARTIAL, DELETING, DAMAGED = ".partial", ".deleting", ".damaged"
# A directory with less free space than this cannot take a checkpoint's next file.
_SPACE_PROBE_BYTES = 1 << 20
_NAME = re.compile(r"^step_(\d{8})$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def check_complete(path: Path) -> None:
    """Raise ``CheckpointError`` unless ``path`` is a whole DCP checkpoint: its metadata file
    reads, and every file it points into exists and is long enough."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file, not a checkpoint directory")
    if path.name.endswith(PARTIAL):
        raise CheckpointError(f"{path} is a save that did not finish (a .partial directory)")
    metadata_path = path / METADATA_FILE
    if not metadata_path.is_file():
        raise CheckpointError(
            f"{path} is not a checkpoint: it has no {METADATA_FILE} "
            "(a checkpoint directory is CHECKPOINT_DIR/step_NNNNNNNN)"
        )
    try:
        metadata = read_metadata(path)
    except Exception as error:  # a damaged pickle raises anything
        raise CheckpointError(f"{metadata_path} is damaged: {error}") from None
    needed: dict[str, int] = {}
    for info in (metadata.storage_data or {}).values():
        end = info.offset + info.length
        needed[info.relative_path] = max(needed.get(info.relative_path, 0), end)
    for name, end in sorted(needed.items()):
        data = path / name
        if not data.is_file():
            raise CheckpointError(f"{data} is missing: the checkpoint is incomplete")
        size = data.stat().st_size
        if size < end:
            raise CheckpointError(f"{data} is truncated: {size} bytes, {end} expected")


class CheckpointStore:
    """Example::

    store = CheckpointStore(run_dir / "checkpoints", keep=2)
    path = store.partial(step)      # every rank saves into path, then, on rank 0:
    store.publish(step)             # renames it complete and drops old ones
    store.latest()                  # newest complete checkpoint, or None
    """

    def __init__(self, root: Path, keep: int) -> None:
        self.root, self.keep = root, keep

    def partial(self, step: int) -> Path:
        """The directory step ``step`` is saved into before it counts."""
        return self.root / (checkpoint_name(step) + PARTIAL)

    def clear_leftovers(self) -> None:
        """Remove what interrupted saves and removals left (rank 0, before a save)."""
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name.endswith((PARTIAL, DELETING)):
                shutil.rmtree(entry, ignore_errors=True)

    def publish(self, step: int) -> Path:
        """Make step ``step``'s finished save count, then keep only the newest ``keep``."""
        final = self.root / checkpoint_name(step)
        if final.exists():  # the same step saved before a restart
            self._remove(final)
        os.replace(self.partial(step), final)
        _fsync_dir(self.root)
        for old in self.published()[: -self.keep]:
            self._remove(old)
        return final

    def published(self) -> list[Path]:
        """Published checkpoints, oldest first (not checked for damage)."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if _NAME.match(p.name) and p.is_dir()]
        return sorted(found, key=lambda p: p.name)

    def latest(self) -> Path | None:
        """The newest checkpoint that is complete; damaged newer ones are skipped, warned of.
        ``None`` if there is none: damaged ones are then set aside (renamed ``.damaged``) with
        one warning that the run starts over, so that its saves cannot overwrite them."""
        damaged = []
        for path in reversed(self.published()):
            try:
                check_complete(path)
            except CheckpointError as error:
                damaged.append((path, error))
                continue
            for skipped, error in damaged:
                log.warning("skipping checkpoint %s: %s", skipped, error)
            return path
        if damaged:
            kept = [(path, self._set_aside(path), error) for path, error in reversed(damaged)]
            log.warning(
                "train.resume=auto: no checkpoint in %s is complete, so this run starts over "
                "from step 0; the damaged ones are kept aside: %s",
                self.root,
                "; ".join(f"{path.name} as {aside.name} ({error})" for path, aside, error in kept),
            )
        return None

    def _set_aside(self, path: Path) -> Path:
        """Rename damaged checkpoint ``path`` to a ``.damaged`` name not yet taken."""
        aside, n = path.with_name(path.name + DAMAGED), 0
        while aside.exists():
            n += 1
            aside = path.with_name(f"{path.name}{DAMAGED}.{n}")
        os.replace(path, aside)
        return aside

    def _remove(self, path: Path) -> None:
        doomed = path.with_name(path.name + DELETING)
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def no_space_left(directory: Path) -> bool:
    """Whether ``directory``'s filesystem refuses a small file for want of space (a probe
    written, synced and removed)."""
    probe = directory / ".space-probe"
    try:
        with open(probe, "wb") as file:
            file.write(bytes(_SPACE_PROBE_BYTES))
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        return error.errno == errno.ENOSPC
    finally:
        probe.unlink(missing_ok=True)
    return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
