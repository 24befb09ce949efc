"""Run a function on N gloo ranks in fresh processes, bounded in time, and collect its results."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

RANK_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(
    rank: int, world_size: int, port: int, out_dir: str, fn: Callable, args: tuple
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=RANK_TIMEOUT_S),
    )
    try:
        torch.save(fn(*args), Path(out_dir) / f"rank{rank}.pt")
        # Tearing down while a peer still uses the connections can abort that peer.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(world_size: int, fn: Callable, *args: Any, tmp_dir: Path) -> list[Any]:
    """``fn(*args)`` on every rank of a fresh gloo world; returns each rank's result in rank order.

    Fails (never hangs) if a rank raises or the world has not finished in ``RANK_TIMEOUT_S``.
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    context = mp.start_processes(
        _rank_main,
        args=(world_size, _free_port(), str(tmp_dir), fn, args),
        nprocs=world_size,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + RANK_TIMEOUT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise TimeoutError(f"{world_size} ranks did not finish in {RANK_TIMEOUT_S} s")
    return [torch.load(tmp_dir / f"rank{r}.pt", weights_only=False) for r in range(world_size)]
