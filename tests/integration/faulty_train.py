"""``launch/train.py`` with faults injected: ``FAULT`` lists one fault per torchrun attempt
(``save@2,step@15``: the first attempt's, then the second's), and on each listed attempt rank
``FAULT_RANK`` (default 1) kills itself with SIGKILL, or hangs:

- ``save@N``: after writing its part of its N-th checkpoint, before the checkpoint is complete;
- ``step@N``: in the middle of its N-th training step (after backward, before the update);
- ``eval@N``: at the start of its N-th evaluation;
- ``hang@N``: at the start of its N-th training step it sleeps, alive but silent (its peers'
  gradient all-reduce waits for it).

N counts from the attempt's start. Used by the restart tests as a real ``torchrun`` job's entry
point.
"""

from __future__ import annotations

import os
import runpy
import signal
import time
from pathlib import Path

from torch.distributed.checkpoint import FileSystemWriter

import dct.train.loop as loop

TRAIN = Path(__file__).resolve().parents[2] / "launch" / "train.py"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hang(*args) -> None:
    time.sleep(3600)


def _nth_call(n: int, before, original):
    """``original``, except that its ``n``-th call runs ``before`` with its arguments."""
    calls = [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            before(*args, **kwargs)
        return original(*args, **kwargs)

    return wrapped


def _inject(kind: str, n: int) -> None:
    if kind == "save":
        write = FileSystemWriter.write_data

        def write_then_die(self, *args, **kwargs):
            write(self, *args, **kwargs).wait()
            _die()

        FileSystemWriter.write_data = _nth_call(n, write_then_die, write)
    elif kind == "step":

        def step_then_die(model, optimizers, batch):
            optimizers.zero_grad()
            model.train_step(batch)
            _die()

        loop._train_step = _nth_call(n, step_then_die, loop._train_step)
    elif kind == "hang":
        loop._train_step = _nth_call(n, _hang, loop._train_step)
    elif kind == "eval":
        loop.evaluate = _nth_call(n, lambda *args: _die(), loop.evaluate)
    else:
        raise ValueError(f"FAULT={kind}@{n}: use save, step, hang or eval")


faults = os.environ.get("FAULT", "").split(",")
attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
if (
    attempt < len(faults)
    and faults[attempt]
    and os.environ.get("RANK") == os.environ.get("FAULT_RANK", "1")
):
    fault_kind, at = faults[attempt].split("@")
    _inject(fault_kind, int(at))
runpy.run_path(str(TRAIN), run_name="__main__")
