"""Export a checkpoint as one ``models.dlrm.DLRM`` state dict, for serving and evaluation.

``python -m dct.export CHECKPOINT OUT`` (or ``dct-export``) reads the checkpoint on one process,
whatever grid wrote it: every table's row blocks are assembled by DCP, and ``OUT`` is a plain
``torch.save``'d state dict of tensors, loadable with ``torch.load(OUT, weights_only=True)``
into the ``DLRM`` whose shape the log line prints. Optimizer and DCT state are left out.

Example::

    python -m dct.export outputs/run/checkpoints/step_00000400 model.pt
    model = DLRM(13, [64, 16], sizes, [64, 32], seed=0)
    model.load_state_dict(torch.load("model.pt", weights_only=True))
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("dct.export")

MODEL = "model/"


def export(checkpoint: Path, out: Path) -> dict[str, object]:
    """Write ``checkpoint``'s model to ``out``; the checkpoint's ``meta`` (step, model shape)."""
    import torch

    from dct.checkpoint import dcp_io
    from dct.checkpoint.run_state import META
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
    dcp_io.load(state, checkpoint)
    meta = state.pop(META)
    model = {key[len(MODEL) :]: tensor for key, tensor in state.items()}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model, out)
    except OSError as error:
        raise CheckpointError(f"cannot write {out}: {error.strerror}") from None
    return meta


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
    except CheckpointError as error:
        log.error("export error: %s", error)
        sys.exit(2)
    shape = meta["fingerprint"]
    log.info(
        "wrote %s: models.dlrm.DLRM(num_dense=%d, bottom_mlp=%s, table_sizes=<%d tables, %d "
        "rows>, top_mlp=%s) at step %d",
        args.out,
        shape["data.num_dense"],
        shape["model.bottom_mlp"],
        len(shape["data.cardinalities"]),
        sum(shape["data.cardinalities"]),
        shape["model.top_mlp"],
        meta["step"],
    )


if __name__ == "__main__":
    main()
