"""Config rules that need a fact known only once the run has started: whether CUDA is there,
whether FBGEMM is installed, the built model's layers.

Each is called where its fact is known, and fails like ``dct.config.checks``: a
``ConfigError`` of one line naming the setting and what to change.
"""

from __future__ import annotations

from typing import Sequence

from dct.config.checks import require


def check_backend_device(backend: str, cuda_available: bool) -> None:
    """``parallel.backend=nccl`` runs on a CUDA GPU only."""
    require(
        backend != "nccl" or cuda_available,
        "parallel.backend=nccl needs a CUDA GPU; use gloo or auto",
    )


def check_fbgemm_installed(table_kernel: str, available: bool) -> None:
    """``model.table_kernel=fbgemm`` asks for a package that may not be installed."""
    require(
        table_kernel != "fbgemm" or available,
        "model.table_kernel=fbgemm needs FBGEMM: pip install -e '.[fbgemm]' (fbgemm-gpu-cpu; "
        "fbgemm-gpu on CUDA), or use model.table_kernel=torch",
    )


def check_cut_names(cuts: Sequence[str], valid: Sequence[str]) -> None:
    """Every pipeline cut names a layer the model can be cut after (``cut_names`` of it)."""
    unknown = [cut for cut in cuts if cut not in valid]
    require(
        not unknown,
        f"parallel.cuts={list(cuts)}: unknown cut(s) {unknown}: this model can be cut at "
        f"{list(valid)}",
    )
