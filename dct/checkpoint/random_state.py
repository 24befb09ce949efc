"""This process's random number generators as a checkpointable part: stochastic rounding and
any other draw after a resume continue the sequence the uninterrupted run would have drawn."""

from __future__ import annotations

from typing import Any

import torch


class RandomState:
    """Example::

    states = {"rng": RandomState(), ...}  # handed to the checkpoint manager
    """

    def state_dict(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["cpu"])
        if state["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])
