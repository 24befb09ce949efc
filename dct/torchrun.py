"""``dct-torchrun``: torchrun, ending the way a shell command does.

torchrun takes the same arguments. When signalled it stops its workers (rank 0 says at which
step, ``dct.runtime.entry``) and then raises its own ``SignalException``; when a worker fails (it
said why in one line) it raises ``ChildFailedError``: a traceback and a summary block of its
own, and exit code 1 either way. This entry point exits instead with one line and the code a
scheduler or a shell script expects: 128 + the signal's number (130 for SIGINT, 143 for
SIGTERM), or the first failed worker's exit code (2 for a user mistake, 1 for a failure). A
worker killed by a signal had no chance to say why; the line says so, and the code is again
128 + the signal's number (137 for SIGKILL, the out-of-memory killer's signal).

Example::

    dct-torchrun --standalone --nproc_per_node=2 launch/train.py experiment=quickstart
"""

from __future__ import annotations

import signal
import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main as torchrun_main


def main(argv: list[str] | None = None) -> None:
    try:
        torchrun_main(argv)
    except SignalException as stop:
        print(f"dct-torchrun: stopped by signal {int(stop.sigval)}", file=sys.stderr)
        sys.exit(128 + int(stop.sigval))
    except ChildFailedError as failed:
        rank, failure = failed.get_first_failure()
        worker = f"rank {rank} (pid {failure.pid})"
        if failure.exitcode >= 0:
            code = failure.exitcode
            what = f"{worker} exited with code {code} (its log says why)"
        else:
            code = 128 - failure.exitcode
            what = (
                f"{worker} was killed by {_signal_name(-failure.exitcode)}, before it could say why"
            )
            if -failure.exitcode == signal.SIGKILL:
                what += " (most often the out-of-memory killer, see dmesg, or a scheduler's limit)"
        print(f"dct-torchrun: {what}; stopping the job with code {code}", file=sys.stderr)
        sys.exit(code)


def _signal_name(number: int) -> str:
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"


if __name__ == "__main__":
    main()
