import os
import subprocess
from pathlib import Path

import pytest

# Tests spawn several ranks on two cores; one thread per process avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
# Caches that running tests (or tools around them) may create anywhere in the checkout.
CACHES = ("__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", ".egg-info")


def untracked_files() -> set[str] | None:
    """Every untracked or ignored file of the checkout but caches, or None outside a git checkout.

    One ``git status`` call, a few milliseconds: a run directory a test forgot to point at
    ``tmp_path`` (``outputs/<date_time>/``, ``multirun/``) shows up here as its files.
    """
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "-z"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    entries = (entry for entry in done.stdout.split("\0") if entry[:3] in ("?? ", "!! "))
    paths = (entry[3:] for entry in entries)
    return {p for p in paths if not any(cache in p for cache in CACHES)}


@pytest.fixture(scope="session", autouse=True)
def repository_stays_clean():
    """Tests write only into temporary directories: fail the session when files appeared in the
    checkout while it ran (a file some other program wrote there meanwhile shows up too)."""
    before = untracked_files()
    yield
    after = untracked_files()
    if before is None or after is None:
        return
    new = sorted(after - before)
    assert not new, (
        f"the test session left {len(new)} new file(s) in the repository, first "
        f"{new[:5]}; tests must write under tmp_path (for a run: hydra.run.dir=tmp_path)"
    )
