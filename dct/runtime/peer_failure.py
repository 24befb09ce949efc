"""Telling a failed collective (a dead, hung or unreachable peer) from any other error.

When a rank dies, its peers' next collective fails: gloo reports a reset connection at once, a
hung peer shows as a timeout after ``parallel.timeout_s``, NCCL raises a ``DistError``. Those
surface as a ``RuntimeError`` raised inside ``torch.distributed``, or, for collectives that
autograd runs (DDP's gradient all-reduce), as a ``RuntimeError`` out of ``backward`` carrying
gloo's source location or NCCL's name; ``describe`` turns one into a line naming the collective
and what to check, and leaves every other error alone.
"""

from __future__ import annotations

import re
import traceback

import torch.distributed as dist

_C10D = "distributed_c10d.py"
# gloo prefixes its messages with the source location: "[.../pair.cc:537] Read error ...".
_LOCATION = re.compile(r"^\[[^\]]*\]\s*")
# Collectives autograd runs wrap it: "Got the following error when running the callback: ...".
_GLOO = re.compile(r"\[[^\]]*/gloo/[^\]]*\]\s*")
_BACKWARD = "_engine_run_backward"


def describe(error: BaseException, timeout_s: float) -> str | None:
    """One line about ``error`` if a collective raised it, else ``None``."""
    frames = traceback.extract_tb(error.__traceback__)
    collectives = [f.name for f in frames if f.filename.endswith(_C10D)]
    lines = str(error).strip().splitlines() or [type(error).__name__]
    gloo = _GLOO.search(lines[0])
    from_backend = gloo is not None or "NCCL" in lines[0]
    if not collectives and not isinstance(error, dist.DistError) and not from_backend:
        return None
    if collectives:
        name = collectives[-1]
    elif any(f.name == _BACKWARD for f in frames):
        name = "a collective in backward (the gradient all-reduce)"
    else:
        name = "a collective"
    reason = lines[0][gloo.end() :] if gloo else _LOCATION.sub("", lines[0])
    reason = reason.split(". ")[0].rstrip(".")
    return (
        f"{name} failed on this rank: {reason}. A peer died, hung longer than "
        f"parallel.timeout_s={timeout_s:g} s or cannot be reached: see the other ranks' logs; "
        "with torchrun --max-restarts=K the job continues from its last checkpoint"
    )
