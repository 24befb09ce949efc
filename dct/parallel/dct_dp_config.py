"""A DCT-DP state from its config group, for every place that compresses gradients."""

from __future__ import annotations

from typing import Any

from torch import nn

from dct.comm.dct_dp import DCTDPState
from dct.comm.meter import ByteMeter
from dct.config import DCTDPConfig


def dct_dp_state(
    cfg: DCTDPConfig, group: Any, module: nn.Module | None = None, meter: ByteMeter | None = None
) -> DCTDPState:
    """``DCTDPState`` over ``group`` with ``cfg``'s settings (``module`` names its layers)."""
    return DCTDPState(
        process_group=group,
        density=cfg.density,
        update_every=cfg.update_every,
        warmup_steps=cfg.warmup_steps,
        value_dtype=cfg.value_dtype,
        guard_factor=cfg.guard_factor,
        guard_window=cfg.guard_window,
        threshold_sample_size=cfg.threshold_sample_size,
        upkeep=cfg.upkeep,
        module=module,
        meter=meter,
    )
