"""Export a checkpoint as one single-process model's state dict, for serving and evaluation.

``python -m dct.export CHECKPOINT OUT`` (or ``dct-export``) reads the checkpoint on one process,
whatever grid wrote it: every table's row blocks are assembled by DCP, and ``OUT`` is a plain
``torch.save``'d state dict of tensors, loadable with ``torch.load(OUT, weights_only=True)``
into the model ``models.zoo`` builds from the settings the log line prints
(``dct.checkpoint.meta.model_config`` reads them from the checkpoint). Optimizer and DCT state
are left out.

Example::

    python -m dct.export outputs/run/checkpoints/step_00000400 model.pt
    model = DLRM(13, [64, 16], sizes, [64, 32], seed=0)  # or models.zoo.recommender(...)
    model.load_state_dict(torch.load("model.pt", weights_only=True))
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("dct.export")

MODEL = "model/"


class ExportError(ValueError):
    """``OUT`` cannot be written; the message says why."""


def export(checkpoint: Path, out: Path) -> dict[str, object]:
    """Write ``checkpoint``'s model to ``out``; the checkpoint's ``meta`` (step, model shape).

    ``out``'s missing parent directories are created. ``out`` is written whole or not at all
    (a full disk leaves no half-written file), and is checked before the checkpoint is read.
    """
    import torch

    _check_writable(out)
    model, meta = load_model_state(checkpoint)
    partial = out.with_name(out.name + ".partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as file:
            torch.save(model, file)
        os.replace(partial, out)
    except (OSError, RuntimeError) as error:  # torch.save reports a failed write as RuntimeError
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise ExportError(f"cannot write {out}: {_reason(error)}") from None
    return meta


def load_model_state(checkpoint: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``checkpoint``'s model as one single-process state dict, whatever grid wrote it,
    and its ``meta``; ``CheckpointError`` for an incomplete, foreign or damaged checkpoint."""
    import torch
    from torch.distributed.checkpoint.api import CheckpointException

    from dct.checkpoint import dcp_io
    from dct.checkpoint.meta import META
    from dct.checkpoint.store import CheckpointError, check_complete

    check_complete(checkpoint)
    metadata = dcp_io.read_metadata(checkpoint)
    shapes = {
        key[len(MODEL) :]: dcp_io.entry_size(metadata, key)
        for key in metadata.state_dict_metadata
        if key.startswith(MODEL)
    }
    if META not in metadata.state_dict_metadata or not shapes:
        raise CheckpointError(f"{checkpoint} is a DCP checkpoint but not one dct wrote")
    state = {f"{MODEL}{name}": torch.empty(shape) for name, shape in shapes.items()}
    state[META] = None
    try:
        dcp_io.load(state, checkpoint)
    except OSError as error:
        raise CheckpointError(f"cannot read {checkpoint}: {error}") from None
    except CheckpointException as error:  # DCP's wrapper of what failed: bytes that do not load
        failed = [type(exception).__name__ for exception, _ in error.failures.values()]
        raise CheckpointError(
            f"{checkpoint} is damaged: its data does not load ({', '.join(failed) or error})"
        ) from None
    meta = state.pop(META)
    return {key[len(MODEL) :]: tensor for key, tensor in state.items()}, meta


def _check_writable(out: Path) -> None:
    """Raise ``ExportError`` if ``out`` is a directory or its nearest existing ancestor is not a
    writable directory."""
    if out.is_dir():
        raise ExportError(f"{out} is a directory: give the file to write, e.g. {out / 'model.pt'}")
    ancestor = out.parent.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ExportError(f"cannot write {out}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK):
        raise ExportError(f"cannot write {out}: {ancestor} is not writable")


def _reason(error: BaseException) -> str:
    """The operating system's reason (``No space left on device``), else torch's message."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    # "[enforce fail at inline_container.cc:747] . open file failed with strerror: ..."
    return re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", str(error).splitlines()[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dct.export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("checkpoint", type=Path, help="a checkpoint directory (step_NNNNNNNN)")
    parser.add_argument("out", type=Path, help="the state dict file to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from dct.checkpoint.store import CheckpointError

    try:
        meta = export(args.checkpoint, args.out)
    except (CheckpointError, ExportError) as error:
        log.error("export error: %s", error)
        sys.exit(2)
    shape = meta["fingerprint"]
    extra = "".join(
        f", {key[len('model.') :]}={shape[key]}"
        for key in ("model.cross_layers", "model.cross_rank")
        if key in shape
    )
    log.info(
        "wrote %s: %s(num_dense=%d, bottom_mlp=%s, table_sizes=<%d tables, %d rows>, "
        "top_mlp=%s%s) at step %d",
        args.out,
        shape.get("model.name", "dlrm"),
        shape["data.num_dense"],
        shape["model.bottom_mlp"],
        len(shape["data.cardinalities"]),
        sum(shape["data.cardinalities"]),
        shape["model.top_mlp"],
        extra,
        meta["step"],
    )


if __name__ == "__main__":
    main()
