"""Starting and always stopping the default process group, on CPU or GPU."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist

from dct.config import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    name: str
    device: torch.device


def choose_backend(requested: str) -> Backend:
    """``auto`` is nccl on CUDA when a GPU is visible, else gloo on CPU."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if requested == "auto":
        requested = "nccl" if cuda else "gloo"
    if requested == "nccl":
        if not cuda:
            raise ConfigError("parallel.backend=nccl needs a CUDA GPU; use gloo or auto")
        torch.cuda.set_device(local_rank)
        return Backend("nccl", torch.device("cuda", local_rank))
    if requested == "gloo":
        return Backend("gloo", torch.device("cpu"))
    raise ConfigError(f"parallel.backend={requested!r} is unknown; use auto, gloo or nccl")


@contextmanager
def distributed(requested_backend: str, timeout_s: float) -> Iterator[Backend]:
    """The default process group for the body's duration, destroyed on every exit path.

    Under torchrun the rendezvous comes from its environment; a plain ``python`` run becomes a
    one-rank group, so single-process training follows the same code path.
    """
    backend = choose_backend(requested_backend)
    timeout = timedelta(seconds=timeout_s)
    if "RANK" in os.environ:
        dist.init_process_group(backend.name, timeout=timeout)
    else:
        dist.init_process_group(
            backend.name, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout
        )
    log.debug("rank %d of %d on %s", dist.get_rank(), dist.get_world_size(), backend.name)
    try:
        yield backend
        # No rank tears down its connections while a peer may still be reading from them.
        dist.barrier()
    finally:
        dist.destroy_process_group()
