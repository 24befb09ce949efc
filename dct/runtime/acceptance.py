"""Nothing in a run directory changes until the run is accepted.

A run is accepted once its config is validated and, if it resumes, its checkpoint loaded
(``dct.train.loop.train`` calls ``accept``). A run refused before that (a config error, a
checkpoint of another model) must leave the directory as it found it: pointed at a finished
run's directory, it would otherwise rewrite that run's recorded config and append to its log,
and the record would no longer match the results.

What a run writes into its directory before that point is deferred here instead: the log file
(``DeferredFileHandler``, the ``train.log`` handler of ``configs/train.yaml``) and Hydra's
``.hydra/`` files (``dct.runtime.run_dir_callback.RecordOnAcceptance``). The pending actions
belong to the process, as its logging handlers do; a process runs one job at a time.
"""

from __future__ import annotations

import copy
import logging
from typing import Callable

_pending: list[Callable[[], None]] = []


def on_acceptance(action: Callable[[], None]) -> None:
    """Run ``action`` when the run is accepted (at once if nothing is pending: see ``accept``)."""
    _pending.append(action)


def accept() -> None:
    """The run is accepted: run the deferred writes, in the order they were deferred. Later
    calls (a benchmark trains several variants in one run) find nothing left to do."""
    while _pending:
        _pending.pop(0)()


def discard() -> None:
    """Drop the deferred writes of a run that ended without being accepted."""
    _pending.clear()


class DeferredFileHandler(logging.FileHandler):
    """A ``logging.FileHandler`` that holds its records in memory until the run is accepted,
    then writes them and every later record to the file. Records of a run never accepted are
    dropped, and the file is neither created nor opened.

    Example (a ``logging.config.dictConfig`` handler, as Hydra's ``job_logging`` takes it)::

        file:
          class: dct.runtime.acceptance.DeferredFileHandler
          filename: ${hydra.runtime.output_dir}/${hydra.job.name}.log
    """

    def __init__(
        self,
        filename: str,
        mode: str = "a",
        encoding: str | None = None,
        delay: bool = False,
        errors: str | None = None,
    ) -> None:
        super().__init__(filename, mode, encoding, delay=True, errors=errors)
        self._held: list[logging.LogRecord] | None = []
        on_acceptance(self._release)

    def emit(self, record: logging.LogRecord) -> None:
        if self._held is None:
            super().emit(record)
            return
        # Formatted when written, so the message is frozen now: its arguments may change.
        held = copy.copy(record)
        held.msg, held.args = record.getMessage(), None
        self._held.append(held)

    def _release(self) -> None:
        held, self._held = self._held or [], None
        self.acquire()
        try:
            # Opened even with nothing to write: an accepted run always has its log file.
            if self.stream is None:
                self.stream = self._open()
        finally:
            self.release()
        for record in held:
            super().emit(record)
