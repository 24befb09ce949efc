"""Metered versions of the plain collectives the framework issues outside the model."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from dct.comm.meter import FP32_BYTES, ByteMeter, all_gather_bytes, ring_all_reduce_bytes


def all_reduce_sum(
    tensor: Tensor, group: dist.ProcessGroup, meter: ByteMeter, channel: str = "other"
) -> Tensor:
    """Sum ``tensor`` in place over ``group``."""
    size = dist.get_world_size(group)
    if size > 1:
        dist.all_reduce(tensor, group=group)
        meter.record(
            channel,
            ring_all_reduce_bytes(tensor.numel() * tensor.element_size(), size),
            ring_all_reduce_bytes(tensor.numel() * FP32_BYTES, size),
        )
    return tensor


def all_gather_cat(
    tensor: Tensor, group: dist.ProcessGroup, meter: ByteMeter, channel: str = "other"
) -> Tensor:
    """Every rank's equally shaped ``tensor``, concatenated along dim 0 in group-rank order."""
    size = dist.get_world_size(group)
    if size == 1:
        return tensor
    pieces = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(pieces, tensor.contiguous(), group=group)
    meter.record(
        channel,
        all_gather_bytes(tensor.numel() * tensor.element_size(), size),
        all_gather_bytes(tensor.numel() * FP32_BYTES, size),
    )
    return torch.cat(pieces)
