"""How many intra-op threads a training process uses.

torchrun sets ``OMP_NUM_THREADS=1`` only when it starts several processes on a node; a plain
``python launch/train.py`` or one process per node gets torch's default, one thread per core.
DLRM's steps are many small operators, and OpenMP threads that share cores with other work spin
and wait on each other: on a busy 2-core machine the default ran one process 14.6x slower than one
thread (``benchmarks/threads.py``). So, unless ``parallel.threads`` or ``OMP_NUM_THREADS`` says
otherwise, a process takes one thread.
"""

from __future__ import annotations

import os

import torch

from dct.config import ConfigError
from dct.config.checks import check_threads

OMP_ENV = "OMP_NUM_THREADS"


def choose_threads(setting: int | None, environ: dict[str, str]) -> tuple[int, str]:
    """The thread count and why: ``parallel.threads``, else ``OMP_NUM_THREADS``, else 1."""
    if setting is not None:
        check_threads(setting)
        return setting, f"parallel.threads={setting}"
    given = environ.get(OMP_ENV)
    if given:
        try:
            return max(1, int(given)), f"{OMP_ENV}={given}"
        except ValueError:
            raise ConfigError(
                f"{OMP_ENV}={given!r} is not a thread count: unset it or set a positive integer"
            ) from None
    return 1, f"the default (set parallel.threads=N to use N; {OMP_ENV} is unset)"


def set_threads(setting: int | None) -> str:
    """Apply ``choose_threads`` to this process; returns a line saying what was chosen."""
    threads, reason = choose_threads(setting, dict(os.environ))
    torch.set_num_threads(threads)
    return f"{threads} intra-op thread(s) per process, by {reason}"
