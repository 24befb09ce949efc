"""What DDP's ``GradBucket`` offers a comm hook's state, for tests without a process group."""

from __future__ import annotations

import torch


class FakeBucket:
    """One bucket holding ``params`` with gradients ``grads``, its buffer their concatenation
    (DDP's gradients are views into it), the step's last."""

    def __init__(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        self._params, self._grads = params, grads

    def parameters(self) -> list[torch.Tensor]:
        return self._params

    def gradients(self) -> list[torch.Tensor]:
        return self._grads

    def buffer(self) -> torch.Tensor:
        return torch.cat([g.reshape(-1) for g in self._grads])

    def is_last(self) -> bool:
        return True
