"""Averaging a module's gradients over a group with a DDP comm hook, for modules DDP cannot wrap.

DDP expects one forward per backward; a GPipe stage runs every micro-batch's forward before the
backwards. After such a step the stage's gradients are complete, and the same hooks DDP would
call (the metered all-reduce, DCT-DP) take them as one bucket: a flat buffer holding all of
them, the parameters in order, and gradient views into the buffer, as DDP's buckets have.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn


class FlatBucket:
    """All gradients of ``params`` in one bucket, the last and only one of its step."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        self._params = list(params)
        self._buffer = torch.cat([p.grad.reshape(-1) for p in self._params])
        sizes = [p.numel() for p in self._params]
        self._grads = [
            chunk.view_as(p) for chunk, p in zip(self._buffer.split(sizes), self._params)
        ]

    def index(self) -> int:
        return 0

    def is_last(self) -> bool:
        return True

    def buffer(self) -> Tensor:
        return self._buffer

    def parameters(self) -> list[Tensor]:
        return self._params

    def gradients(self) -> list[Tensor]:
        return self._grads


Hook = Callable[[Any, FlatBucket], torch.futures.Future]


def sync_gradients(params: Sequence[nn.Parameter], hook: Hook, state: Any) -> None:
    """Replace each parameter's gradient by what ``hook`` makes of it (the group's average).

    Example::

        sync_gradients(stage.parameters(), metered_allreduce_hook, MeteredAllReduceState(g, m))
    """
    params = [p for p in params if p.grad is not None]
    bucket = FlatBucket(params)
    averaged = hook(state, bucket).wait()
    for param, chunk in zip(params, averaged.split([p.numel() for p in params])):
        param.grad.copy_(chunk.view_as(param))
