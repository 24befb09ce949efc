"""Which comm hook averages a replicated module's gradients: DCT-DP, a PyTorch compressor, or the
metered all-reduce, as the config chooses.

Both wrappers take a ``GradientHooks`` from ``dct.parallel.builder`` and ask it for the hook of
each module they replicate (the DDP'd tower in embedding mode, a stage in pipeline mode); they
never read the config themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dct.comm.dct_dp import DCTDPState, dct_dp_hook
from dct.comm.meter import ByteMeter
from dct.comm.metered_allreduce import MeteredAllReduceState, metered_allreduce_hook
from dct.comm.pytorch_compressors import (
    MeteredPowerSGDState,
    metered_fp16_hook,
    metered_powersgd_hook,
)
from dct.config import DCTDPConfig, DPHookConfig
from dct.parallel.dct_dp_config import dct_dp_state

HookState = DCTDPState | MeteredPowerSGDState | MeteredAllReduceState


@dataclass(frozen=True)
class GradientHooks:
    """DCT-DP's hook with ``dct_dp`` enabled, else the one ``dp_hook`` names (the metered
    all-reduce by default, PyTorch's fp16 cast, or PowerSGD seeded with ``seed``, which every
    rank of a group must share)."""

    dct_dp: DCTDPConfig | None = None
    dp_hook: DPHookConfig | None = None
    seed: int = 0

    def __call__(
        self, module: nn.Module, group: Any, meter: ByteMeter
    ) -> tuple[Callable, HookState]:
        """The comm hook and its state that average ``module``'s gradients over ``group``."""
        if self.dct_dp is not None and self.dct_dp.enabled:
            return dct_dp_hook, dct_dp_state(self.dct_dp, group, module, meter)
        name = "allreduce" if self.dp_hook is None else self.dp_hook.name
        if name == "fp16":
            return metered_fp16_hook, MeteredAllReduceState(group, meter)
        if name == "powersgd":
            state = MeteredPowerSGDState(
                group,
                meter,
                matrix_approximation_rank=self.dp_hook.powersgd_rank,
                start_powerSGD_iter=self.dp_hook.powersgd_start_step,
                random_seed=self.seed,
            )
            return metered_powersgd_hook, state
        return metered_allreduce_hook, MeteredAllReduceState(group, meter)

    def data_parallel(
        self, module: nn.Module, group: Any, meter: ByteMeter, device: torch.device
    ) -> tuple[nn.Module, DCTDPState | None]:
        """``module`` under DDP over ``group`` with this hook, and the hook's state if it is
        DCT-DP's. A group of one needs no wrapper. Every rank already holds identical weights
        (models initialise from the seed), so DDP's start-up broadcast is skipped."""
        if torch.distributed.get_world_size(group) == 1:
            return module, None
        ddp = DistributedDataParallel(
            module,
            device_ids=[device.index] if device.type == "cuda" else None,
            process_group=group,
            init_sync=False,
        )
        hook, state = self(module, group, meter)
        ddp.register_comm_hook(state, hook)
        return ddp, state if isinstance(state, DCTDPState) else None
