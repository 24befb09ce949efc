"""``dct-torchrun``: torchrun, ending the way a shell command does.

torchrun takes the same arguments. When signalled it stops its workers (rank 0 says at which
step, ``dct.runtime.entry``) and then raises its own ``SignalException``; when a worker fails (it
said why in one line) it raises ``ChildFailedError``: a traceback and a summary block of its
own, and exit code 1 either way. This entry point exits instead with one line and the code a
scheduler or a shell script expects: 128 + the signal's number (130 for SIGINT, 143 for
SIGTERM), or the first failed worker's exit code (2 for a user mistake, 1 for a failure).

Example::

    dct-torchrun --standalone --nproc_per_node=2 launch/train.py experiment=quickstart
"""

from __future__ import annotations

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
        code = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
        print(
            f"dct-torchrun: rank {rank} (pid {failure.pid}) exited with code {failure.exitcode} "
            f"(its log says why); stopping the job with code {code}",
            file=sys.stderr,
        )
        sys.exit(code)


if __name__ == "__main__":
    main()
