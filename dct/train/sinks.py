"""Where scalars go: TensorBoard and a JSON-lines file, behind one small interface."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Protocol

from torch.utils.tensorboard import SummaryWriter


class MetricSink(Protocol):
    def write(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def rewind(self, step: int) -> None:
        """Forget what was written for steps after ``step`` (a run resumed from there)."""

    def close(self) -> None: ...


class TensorBoardSink:
    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._writer = SummaryWriter(log_dir=str(log_dir))

    def rewind(self, step: int) -> None:
        # TensorBoard hides the earlier files' events from purge_step on.
        self._writer.close()
        self._writer = SummaryWriter(log_dir=str(self._log_dir), purge_step=step + 1)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            self._writer.add_scalar(name, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class JsonLinesSink:
    """One ``{"step": ..., name: value, ...}`` object a line."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file = path.open("a", encoding="utf-8")

    def rewind(self, step: int) -> None:
        self._file.close()
        lines = self._path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _step_of(line) is not None and _step_of(line) <= step]
        partial = self._path.with_name(self._path.name + ".partial")
        partial.write_text("".join(kept), encoding="utf-8")
        os.replace(partial, self._path)
        self._file = self._path.open("a", encoding="utf-8")

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        self._file.write(json.dumps({"step": step, **scalars}) + "\n")
        self._file.flush()

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
    partial.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)
