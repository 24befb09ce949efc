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

from dct.config.checks import check_backend
from dct.config.runtime_checks import check_backend_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    name: str
    device: torch.device


def choose_backend(requested: str) -> Backend:
    """``auto`` is nccl on CUDA when a GPU is visible, else gloo on CPU."""
    check_backend(requested)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if requested == "auto":
        requested = "nccl" if cuda else "gloo"
    check_backend_device(requested, cuda)
    if requested == "nccl":
        torch.cuda.set_device(local_rank)
        return Backend("nccl", torch.device("cuda", local_rank))
    return Backend("gloo", torch.device("cpu"))


def _attempt_store(timeout: timedelta) -> dist.Store:
    """torchrun's store, under a prefix of its own for this attempt.

    torchrun keeps one store for all the attempts of a job. The keys a process group's
    rendezvous leaves there outlive a failed attempt, and the workers it restarts create groups
    with the same names (``init_device_mesh`` names them after their ranks): they could read a
    dead worker's address, and a restart fail. A prefix per attempt keeps them apart.
    """
    rank = int(os.environ["RANK"])
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        int(os.environ["WORLD_SIZE"]),
        is_master=rank == 0 and not agent_store,
        timeout=timeout,
    )
    return dist.PrefixStore(f"dct/attempt{os.environ['TORCHELASTIC_RESTART_COUNT']}", store)


@contextmanager
def distributed(requested_backend: str, timeout_s: float) -> Iterator[Backend]:
    """The default process group for the body's duration, destroyed on every exit path.

    Under torchrun the rendezvous comes from its environment; a plain ``python`` run becomes a
    one-rank group, so single-process training follows the same code path.
    """
    backend = choose_backend(requested_backend)
    timeout = timedelta(seconds=timeout_s)
    if "TORCHELASTIC_RESTART_COUNT" in os.environ:
        dist.init_process_group(
            backend.name,
            store=_attempt_store(timeout),
            rank=int(os.environ["RANK"]),
            world_size=int(os.environ["WORLD_SIZE"]),
            timeout=timeout,
        )
    elif "RANK" in os.environ:
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
