"""Ways a run stops before its end that are not a bug: a diverged loss, a signal.

``Diverged`` is raised by every rank alike (they all see the same reduced losses); ``Stopped``
by each rank that received SIGINT or SIGTERM (``stop_on_signals``). The entry point turns
either into one line and an exit code; neither leaves a ``metrics.json``.
"""

from __future__ import annotations

import math
import signal
from contextlib import contextmanager
from typing import Iterator, Sequence

from dct.config import RunConfig


class Diverged(RuntimeError):
    """The training loss (or the model's predictions) became NaN or infinite."""


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived; ``step`` is the last step this rank finished (once known).

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` swallows it.
    """

    def __init__(self, signum: int, step: int | None = None) -> None:
        super().__init__(signum, step)
        self.signum, self.step = signum, step

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum

    def at(self, step: int) -> Stopped:
        return Stopped(self.signum, step)


def check_losses(losses: Sequence[float], first_step: int, cfg: RunConfig) -> None:
    """Raise ``Diverged`` naming the first step whose loss is not finite."""
    for offset, loss in enumerate(losses):
        if not math.isfinite(loss):
            raise Diverged(
                f"the training loss is {loss} at step {first_step + offset}. "
                f"{likely_cause(cfg)}; no metrics.json was written"
            )


def likely_cause(cfg: RunConfig) -> str:
    """What usually makes this configuration diverge."""
    tables_lr = cfg.optim.tables_lr
    lrs = f"train.lr={cfg.train.lr:g}"
    if tables_lr is not None:
        lrs += f", optim.tables_lr={tables_lr:g}"
    return (
        f"The learning rate is the usual cause ({lrs}, optim={cfg.optim.name}): lower it, e.g. "
        f"train.lr={cfg.train.lr / 10:g}"
    )


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the body, SIGINT and SIGTERM raise ``Stopped``; previous handlers come back after.

    Once one arrived, later ones are ignored for the rest of the process: Ctrl-C reaches every
    worker twice (from the terminal, then forwarded by torchrun), and the second must not
    interrupt the first one's clean-up.
    """
    signals = (signal.SIGINT, signal.SIGTERM)
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        received.append(signum)
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        if not received:
            for s, old in previous.items():
                signal.signal(s, old)
