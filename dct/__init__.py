"""dct: hybrid-parallel training of DLRM-style recommenders with measured communication.

Example::

    from dct import DCTDPState, RowExchange, all_to_all_rows, dct_dp_hook, dct_mp_codecs

    ddp.register_comm_hook(DCTDPState(process_group=None, density=0.01), dct_dp_hook)

    spec = RowExchange(send_rows, recv_rows, widths, group=mp_group, meter=meter,
                       codecs=dct_mp_codecs(density=0.05, value_dtype=torch.float16))
    blocks = all_to_all_rows(rows, spec)  # differentiable; gradients return at the kept positions
"""

from dct.comm.all_to_all import RowExchange, all_to_all_rows
from dct.comm.dct_dp import DCTDPState, dct_dp_hook
from dct.comm.dct_mp import dct_mp_codecs

__all__ = ["DCTDPState", "RowExchange", "all_to_all_rows", "dct_dp_hook", "dct_mp_codecs"]
