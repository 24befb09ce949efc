"""dct: hybrid-parallel training of DLRM-style recommenders with measured communication.

Example::

    from dct import DCTDPState, RowExchange, all_to_all_rows, dct_dp_hook, dct_mp_codecs

    ddp.register_comm_hook(DCTDPState(process_group=None, density=0.01), dct_dp_hook)

    spec = RowExchange(send_rows, recv_rows, widths, group=mp_group, meter=meter,
                       codecs=dct_mp_codecs(density=0.05, value_dtype=torch.float16))
    blocks = all_to_all_rows(rows, spec)  # differentiable; gradients return at the kept positions
"""

import importlib

# Resolved on first use: importing any dct module (a command-line tool's --help) must not
# pay for torch.
_EXPORTS = {
    "RowExchange": "dct.comm.all_to_all",
    "all_to_all_rows": "dct.comm.all_to_all",
    "DCTDPState": "dct.comm.dct_dp",
    "dct_dp_hook": "dct.comm.dct_dp",
    "dct_mp_codecs": "dct.comm.dct_mp",
}


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dct' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = ["DCTDPState", "RowExchange", "all_to_all_rows", "dct_dp_hook", "dct_mp_codecs"]
