"""Where scalars go: TensorBoard and a JSON-lines file, behind one small interface.

A write that fails (a full disk) raises ``OSError`` naming the file or directory it was writing
(``dct.runtime.no_space``) and leaves no half-written line or file behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Protocol

from torch.utils.tensorboard import SummaryWriter

from dct.runtime.no_space import naming


class MetricSink(Protocol):
    def write(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def rewind(self, step: int) -> None:
        """Forget what was written for steps after ``step`` (a run resumed from there)."""

    def close(self) -> None: ...


class TensorBoardSink:
    """Its event file is created on the first write or rewind: a run refused before then (a
    checkpoint of another model) leaves no file behind (``dct.runtime.acceptance``)."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._writer: SummaryWriter | None = None

    def rewind(self, step: int) -> None:
        # TensorBoard hides the earlier files' events from purge_step on.
        self.close()
        self._writer = SummaryWriter(log_dir=str(self._log_dir), purge_step=step + 1)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if self._writer is None:
            self._writer = SummaryWriter(log_dir=str(self._log_dir))
        try:
            for name, value in scalars.items():
                self._writer.add_scalar(name, value, step)
            self._writer.flush()
        except OSError as error:  # raised again here by the writer's background thread
            raise naming(error, self._log_dir) from error

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError as error:
                raise naming(error, self._log_dir) from error


class JsonLinesSink:
    """One ``{"step": ..., name: value, ...}`` object a line.

    Unbuffered: each line is written whole or, if the disk is full, cut off again, so that a
    reader never meets a line written in part.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file = path.open("ab", buffering=0)

    def rewind(self, step: int) -> None:
        self._file.close()
        lines = self._path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _step_of(line) is not None and _step_of(line) <= step]
        partial = self._path.with_name(self._path.name + ".partial")
        partial.write_text("".join(kept), encoding="utf-8")
        os.replace(partial, self._path)
        self._file = self._path.open("ab", buffering=0)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        line = memoryview((json.dumps({"step": step, **scalars}) + "\n").encode("utf-8"))
        end = self._file.tell()
        try:
            while line:  # an unbuffered write may write only part of its bytes
                line = line[self._file.write(line) :]
        except OSError as error:
            self._file.truncate(end)
            raise naming(error, self._path) from error

    def close(self) -> None:
        self._file.close()


def _step_of(line: str) -> int | None:
    """The step of a ``metrics.jsonl`` line; ``None`` for a line cut short by a kill."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def open_sinks(run_dir: Path, tensorboard: bool) -> list[MetricSink]:
    sinks: list[MetricSink] = [JsonLinesSink(run_dir / "metrics.jsonl")]
    if tensorboard:
        sinks.append(TensorBoardSink(run_dir / "tensorboard"))
    return sinks


def write_json_atomically(path: Path, payload: Mapping[str, object]) -> None:
    """Write ``path`` so that a reader never sees it half written."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise naming(error, path) from error
    os.replace(partial, path)
