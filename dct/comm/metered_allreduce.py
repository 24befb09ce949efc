"""The DDP comm hook that every dense-gradient all-reduce goes through, so the meter sees it.

Compressing hooks (DCT-DP) replace this one; with this hook DDP behaves as with its built-in
all-reduce: gradients averaged over the group. (No postponed annotations here: DDP checks the
hook's ``bucket`` annotation at registration.)
"""

from dataclasses import dataclass

import torch
import torch.distributed as dist

from dct.comm.meter import FP32_BYTES, ByteMeter, ring_all_reduce_bytes


@dataclass
class MeteredAllReduceState:
    process_group: dist.ProcessGroup
    meter: ByteMeter
    channel: str = "dp"


def metered_allreduce_hook(
    state: MeteredAllReduceState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """Average the bucket over ``state.process_group`` and record its bytes.

    Example::

        ddp.register_comm_hook(MeteredAllReduceState(group, meter), metered_allreduce_hook)
    """
    buffer = bucket.buffer()
    size = dist.get_world_size(state.process_group)
    state.meter.record(
        state.channel,
        ring_all_reduce_bytes(buffer.numel() * buffer.element_size(), size),
        ring_all_reduce_bytes(buffer.numel() * FP32_BYTES, size),
    )
    buffer.div_(size)
    work = dist.all_reduce(buffer, group=state.process_group, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])
