"""A real full disk for tests: a tiny tmpfs, mounted for the test and always unmounted."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def tiny_disk(mount_point: Path, size: str = "16k") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``mount_point`` (created); skips the test unless root can mount."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("needs root and mount to make a small filesystem")
    try:
        yield mount_point
    finally:
        # A file a failed test left open keeps the mount busy: detach it then, lazily.
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(directory: Path, leave: int = 0) -> None:
    """Fill ``directory``'s filesystem, then free ``leave`` bytes (rounded to its blocks)."""
    filler = directory / "filler"
    with filler.open("ab", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError:
            pass
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
