"""Stopping where the validation loss turns, and keeping the weights from before it turned.

On small data a recommender's tables memorise their rows within a few passes: the eval loss
falls, then climbs, at a number of passes that depends on the data (about 1 on 8,571 Criteo
rows, 2 on MovieLens 100k, more than 8 on UCI Adult; docs/data.md). So, with a validation
split (rows held out of the train split, never trained on), every evaluation also scores it;
the weights of the evaluation with the lowest validation log-loss are kept (a copy of this
rank's part of the model), and ``patience`` evaluations in a row without a lower one end the
run, which then restores those weights. The eval split is never looked at to decide anything.

The copy is a shared checkpoint state (``best/<name>``, sharded like ``model/<name>``), so a
resumed run restores the same weights as an uninterrupted one; the counters live in the rank
record.

Example::

    stopping = EarlyStopping(model, patience=8)
    if stopping.observe(step, validation.logloss):   # True: stop now
        ...
    stopping.restore()                                # the best evaluation's weights
"""

from __future__ import annotations

import math
from typing import Any

import torch

from dct.checkpoint.dcp_io import RowBlocks
from dct.parallel.model_state import load_in_place
from dct.parallel.parallel_model import ParallelModel


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict's tensors (and row blocks) copied, off the model's storage."""
    copied: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, RowBlocks):
            copied[key] = RowBlocks(
                [b.clone() for b in value.blocks], value.starts, value.global_size
            )
        else:
            copied[key] = value.clone()
    return copied


class EarlyStopping:
    """The lowest validation log-loss so far, the step that reached it, and that step's weights
    (``weights``: this rank's part, in ``model.state_dict()``'s form)."""

    def __init__(self, model: ParallelModel, patience: int) -> None:
        self.model, self.patience = model, patience
        self.best_loss, self.best_step, self.since_best = math.inf, 0, 0
        self.weights = _copy(model.state_dict())

    def observe(self, step: int, validation_loss: float) -> bool:
        """Record an evaluation; ``True`` when ``patience`` of them in a row found no lower
        loss (never with ``patience`` 0)."""
        if validation_loss < self.best_loss:
            self.best_loss, self.best_step, self.since_best = validation_loss, step, 0
            load_in_place(self.weights, self.model.state_dict())
        else:
            self.since_best += 1
        return 0 < self.patience <= self.since_best

    @torch.no_grad()
    def restore(self) -> None:
        """Put the best evaluation's weights back into the model."""
        load_in_place(self.model.state_dict(), self.weights)

    def counters(self) -> dict[str, Any]:
        return {
            "best_loss": self.best_loss,
            "best_step": self.best_step,
            "since_best": self.since_best,
        }

    def load_counters(self, state: dict[str, Any]) -> None:
        self.best_loss = float(state["best_loss"])
        self.best_step = int(state["best_step"])
        self.since_best = int(state["since_best"])

    def state_dict(self) -> dict[str, Any]:
        """The kept weights: a shared checkpoint state, loaded in place."""
        return self.weights

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_in_place(self.weights, state)


class StoppingCounters:
    """``EarlyStopping``'s counters as a rank-record part of a checkpoint."""

    def __init__(self, stopping: EarlyStopping) -> None:
        self.stopping = stopping

    def state_dict(self) -> dict[str, Any]:
        return self.stopping.counters()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stopping.load_counters(state)
