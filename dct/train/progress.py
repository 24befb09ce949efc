"""How far a run has come: its step and the per-step record its metrics are computed from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dct.train.evaluation import EvalResult


@dataclass
class TrainProgress:
    """``losses``: the global-batch mean loss of every step; ``step_times`` / ``read_times``:
    this rank's wall time of each step without / for reading its batch; ``history``: every
    evaluation so far; ``stopped``: early stopping ended the run (``dct.train.early_stopping``).
    All survive a checkpoint, so a resumed run reports the whole run."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    read_times: list[float] = field(default_factory=list)
    history: list[EvalResult] = field(default_factory=list)
    stopped: bool = False

    def state_dict(self) -> dict[str, Any]:
        """Numbers, lists and dicts only (loadable with ``weights_only=True``)."""
        return {**asdict(self), "history": [asdict(result) for result in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.losses = list(state["losses"])
        self.step_times = list(state["step_times"])
        self.read_times = list(state["read_times"])
        self.history = [EvalResult(**result) for result in state["history"]]
        self.stopped = bool(state.get("stopped", False))  # absent before early stopping
