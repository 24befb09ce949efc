"""Run a function on N gloo ranks in fresh processes, bounded in time, and collect its results."""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import signal
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.time_limit import Deadline

# A world's budget on an idle machine; ``Deadline`` stretches it by the machine's load.
RANK_TIMEOUT_S = 120
# Collectives inside the ranks wait longer than the guard, so a hang ends in the guard's message.
COLLECTIVE_TIMEOUT_S = 3600
# Ranks fork from a server that imported these once, instead of each importing torch and the
# library afresh (seconds of CPU per rank, most of a small world's time on two cores). The
# server starts single-threaded, before any process group, so forking it is safe.
PRELOAD = ["torch", "torch.distributed", "dct.train.loop", "dct.parallel.hybrid"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(
    rank: int, world_size: int, port: int, out_dir: str, fn: Callable, args: tuple
) -> None:
    torch.set_num_threads(1)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S),
    )
    try:
        torch.save(fn(*args), Path(out_dir) / f"rank{rank}.pt")
        # Tearing down while a peer still uses the connections can abort that peer.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(
    world_size: int, fn: Callable, *args: Any, tmp_dir: Path, limit_s: float = RANK_TIMEOUT_S
) -> list[Any]:
    """``fn(*args)`` on every rank of a fresh gloo world; returns each rank's result in rank order.

    Fails (never hangs): with the rank's traceback if a rank raises, with a ``TimeoutError``
    saying so (after every rank printed its stack) if the world has not finished within
    ``limit_s`` stretched by the machine's load (``tests.time_limit``).
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    multiprocessing.set_forkserver_preload(PRELOAD)
    context = mp.start_processes(
        _rank_main,
        args=(world_size, _free_port(), str(tmp_dir), fn, args),
        nprocs=world_size,
        join=False,
        start_method="forkserver",
    )
    deadline = Deadline(limit_s)
    while not context.join(timeout=1):
        if deadline.expired():
            for process in context.processes:
                os.kill(process.pid, signal.SIGUSR1)
            context.join(timeout=2)
            for process in context.processes:
                process.kill()
            raise TimeoutError(f"{world_size} ranks: {deadline.explain()} (their stacks: above)")
    return [torch.load(tmp_dir / f"rank{r}.pt", weights_only=False) for r in range(world_size)]
