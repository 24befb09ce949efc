"""The floating-point types values may travel in, and the one safe way to round into them."""

from __future__ import annotations

import torch
from torch import Tensor

WIRE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def to_wire(values: Tensor, dtype: torch.dtype) -> Tensor:
    """``values`` rounded to ``dtype``, clamped to its finite range first: a value beyond it
    arrives as the largest finite value of its sign, never as an infinity."""
    if dtype == values.dtype:
        return values
    limit = torch.finfo(dtype).max
    return values.clamp(-limit, limit).to(dtype)


def wire_dtype(value: str | torch.dtype, setting: str = "value_dtype") -> torch.dtype:
    """``value`` as a torch dtype: a name in ``WIRE_DTYPES`` or one of their dtypes."""
    if isinstance(value, str):
        value = WIRE_DTYPES.get(value, value)
    if value not in WIRE_DTYPES.values():
        raise ValueError(f"{setting}={value!r}: use one of {list(WIRE_DTYPES)}")
    return value
