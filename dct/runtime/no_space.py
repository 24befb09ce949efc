"""A full disk as one line naming the directory that was being written.

``OSError: [Errno 28] No space left on device`` from a ``write`` names no file. The writers of a
run's outputs (``dct.train.sinks``) re-raise it with the path they were writing, and the entry
points turn it into ``no space left on <dir>: ...`` and exit code 2: it is the user's to fix,
like a config mistake. Imports no torch (Hydra's error report uses it too).
"""

from __future__ import annotations

import errno
import logging
import sys
import threading
from functools import partial
from pathlib import Path

ADVICE = "free space or choose another hydra.run.dir / train.checkpoint_dir"


def describe_no_space(error: BaseException, fallback_dir: Path | None = None) -> str | None:
    """The one line for ``error`` if it (or an error it was raised from) is a full disk, else
    ``None``. The directory is the one holding the file being written, or ``fallback_dir``
    when the error names none."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if _is_full_disk(error):
            where = _directory(error.filename) or fallback_dir
            place = f"no space left on {where}" if where else "no space left on the device"
            return f"{place}: {ADVICE}"
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def naming(error: OSError, path: Path) -> OSError:
    """A copy of ``error`` naming ``path`` if it names no file (a failed ``write`` or
    ``flush``); to be raised ``from error``."""
    return OSError(error.errno, error.strerror, error.filename or str(path))


def quiet_when_full() -> None:
    """A full disk prints no traceback on its way to the one line: the root logger's handlers
    drop a record they cannot write for lack of space (logging would print a traceback for
    each), and a background thread that dies of it (TensorBoard's writer, whose error the
    training thread meets again at its next write) ends silently."""
    for handler in logging.getLogger().handlers:
        handler.handleError = partial(_handle_error, handler.handleError)  # type: ignore[method-assign]
    threading.excepthook = partial(_thread_failed, threading.excepthook)


def _handle_error(report, record: logging.LogRecord) -> None:
    if not _is_full_disk(sys.exc_info()[1]):
        report(record)


def _thread_failed(report, args: threading.ExceptHookArgs) -> None:
    if not _is_full_disk(args.exc_value):
        report(args)


def _is_full_disk(error: BaseException | None) -> bool:
    return isinstance(error, OSError) and error.errno == errno.ENOSPC


def _directory(filename: object) -> Path | None:
    if not isinstance(filename, (str, Path)):
        return None
    path = Path(filename)
    return path if path.is_dir() else path.parent
