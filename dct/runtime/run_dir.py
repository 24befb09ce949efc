"""A run directory that can be written, used by one job at a time.

``claim`` checks that the directory can be created and written, then takes an exclusive lock on
a file in it (``flock``: released by the kernel when the process ends, however it ends). Each
node's first worker (``LOCAL_RANK`` 0) locks ``.lock.node<N>`` (its node rank), so a shared
file system sees one lock per node of a job and a local one a lock per node too; the node's
other workers wait until the lock names their job. A second job pointed at a directory in use
is refused with one line before it writes anything there.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import IO


class RunDirError(RuntimeError):
    """The run directory cannot be used: the message says why and what to do."""


def check_writable(run_dir: Path) -> None:
    """Raise ``RunDirError`` unless ``run_dir`` is, or can be made, a writable directory."""
    setting = f"hydra.run.dir={run_dir}"
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{setting} is a file, not a directory: choose another hydra.run.dir")
    existing = run_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(
            f"{setting} cannot be created: {existing} is a file: choose another hydra.run.dir"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == run_dir else f"cannot be created in {existing}"
        raise RunDirError(
            f"{setting} {what} (no write permission for this user, or a read-only file system): "
            "choose a writable hydra.run.dir"
        )


def claim(
    run_dir: Path, job: str, node_rank: int, local_rank: int, wait_s: float = 120
) -> IO[str] | None:
    """Create and lock ``run_dir`` for ``job`` as described above; keep the returned file open
    for the process's lifetime (``None`` for workers other than a node's first)."""
    check_writable(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"hydra.run.dir={run_dir} cannot be created: {error.strerror}") from None
    path = run_dir / f".lock.node{node_rank}"
    if local_rank != 0:
        _wait_for(path, job, wait_s)
        return None
    try:
        handle = open(path, "a+")
    except OSError as error:
        raise RunDirError(
            f"hydra.run.dir={run_dir} cannot be written: {error.strerror}: choose a writable "
            "hydra.run.dir"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunDirError(
            f"hydra.run.dir={run_dir} is in use by a running job ({holder}): wait for it to end, "
            "or choose another hydra.run.dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"job {job}, pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def _wait_for(path: Path, job: str, wait_s: float) -> None:
    """Until the node's first worker holds the lock for ``job`` (it started with this worker).

    If another job holds it, the first worker was refused and torchrun stops this one too.
    """
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().startswith(f"job {job},"):
            return
        time.sleep(0.05)
    raise RunDirError(f"{path} was not locked for job {job} within {wait_s:g} s")
