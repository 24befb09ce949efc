"""PyTorch's own gradient compressors as metered DDP comm hooks: the baselines DCT-DP is judged by.

PyTorch does the compressing (``fp16_compress_hook``, ``powerSGD_hook``); these wrappers only
record what each hands to all-reduce on channel ``dp``, every all-reduce counted as a ring sends
it (``ring_all_reduce_bytes``), against the fp32 ring all-reduce of the bucket, as the metered
all-reduce (``dct.comm.metered_allreduce``) does. (No postponed annotations here: DDP checks
the hook's ``bucket`` annotation at registration.)
"""

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import fp16_compress_hook
from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import PowerSGDState, powerSGD_hook

from dct.comm.meter import FP32_BYTES, ByteMeter, ring_all_reduce_bytes
from dct.comm.metered_allreduce import MeteredAllReduceState


def metered_fp16_hook(
    state: MeteredAllReduceState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """PyTorch's ``fp16_compress_hook``: the bucket averaged as fp16, half the fp32 bytes.

    Example::

        ddp.register_comm_hook(MeteredAllReduceState(group, meter), metered_fp16_hook)
    """
    numel = bucket.buffer().numel()
    size = dist.get_world_size(state.process_group)
    state.meter.record(
        state.channel,
        ring_all_reduce_bytes(numel * torch.float16.itemsize, size),
        ring_all_reduce_bytes(numel * FP32_BYTES, size),
    )
    return fp16_compress_hook(state.process_group, bucket)


class MeteredPowerSGDState:
    """PyTorch's ``PowerSGDState`` (as ``powersgd``) and the meter its hook records into.

    PowerSGD runs with PyTorch's defaults (error feedback, warm start, ``min_compression_rate``
    2): the first ``start_powerSGD_iter`` steps all-reduce each bucket plainly, later steps send
    a rank-``matrix_approximation_rank`` factorisation ``P Q^T`` of each matrix worth compressing.
    ``random_seed`` draws the first ``Q``s: every rank of the group must pass the same one.

    Example::

        state = MeteredPowerSGDState(group, meter, matrix_approximation_rank=1, random_seed=seed)
        ddp.register_comm_hook(state, metered_powersgd_hook)
    """

    def __init__(
        self,
        process_group: dist.ProcessGroup,
        meter: ByteMeter,
        matrix_approximation_rank: int = 1,
        start_powerSGD_iter: int = 2,
        random_seed: int = 0,
        channel: str = "dp",
    ) -> None:
        self.powersgd = PowerSGDState(
            process_group,
            matrix_approximation_rank=matrix_approximation_rank,
            start_powerSGD_iter=start_powerSGD_iter,
            random_seed=random_seed,
        )
        self.meter = meter
        self.channel = channel


def metered_powersgd_hook(
    state: MeteredPowerSGDState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """PyTorch's ``powerSGD_hook``, its all-reduces metered.

    A plain step all-reduces the bucket. A compressing step runs three all-reduces: the tensors
    left uncompressed (vectors, and matrices ``n x m`` for which ``(n + m) r`` is not less than
    ``n m / min_compression_rate``), then all ``P``s, then all ``Q``s. Their sizes come from the
    hook's own state: ``P`` and ``Q`` are ``p_memory_dict`` / ``q_memory_dict`` of the bucket,
    and the hook adds to ``total_numel_after_compression`` exactly the elements it all-reduces
    (an uncompressed tensor's ``n m``, a compressed one's ``(n + m) r``, what its ``P`` and
    ``Q`` hold), so the rest of that increase is the uncompressed all-reduce.

    PyTorch's hook launches the ``P`` and ``Q`` all-reduces from completion callbacks, which run
    on the backend's threads: with several buckets in flight, two ranks can order those
    collectives differently and hang (gloo does). So each bucket's exchange is waited for here,
    before the next bucket's starts; this gives up overlapping it with the backward pass, and
    changes no value.

    Example::

        ddp.register_comm_hook(MeteredPowerSGDState(group, meter), metered_powersgd_hook)
    """
    powersgd, buffer = state.powersgd, bucket.buffer()
    # The hook decides by the counter as it is now; a compressing step advances it when done.
    compressing = powersgd.iter >= powersgd.start_powerSGD_iter
    counted = powersgd.total_numel_after_compression
    future = powerSGD_hook(powersgd, bucket)
    future.wait()
    if compressing:
        factors = [
            powersgd.p_memory_dict[bucket.index()].numel(),
            powersgd.q_memory_dict[bucket.index()].numel(),
        ]
        uncompressed = powersgd.total_numel_after_compression - counted - sum(factors)
        payloads = [uncompressed, *factors]
    else:
        payloads = [buffer.numel()]
    size = dist.get_world_size(powersgd.process_group)
    state.meter.record(
        state.channel,
        sum(ring_all_reduce_bytes(n * buffer.element_size(), size) for n in payloads),
        ring_all_reduce_bytes(buffer.numel() * FP32_BYTES, size),
    )
    return future
