"""dct: hybrid-parallel training of DLRM-style recommenders with measured communication.

Example::

    from dct import DCTDPState, dct_dp_hook

    ddp.register_comm_hook(DCTDPState(process_group=None, density=0.01), dct_dp_hook)
"""

from dct.comm.dct_dp import DCTDPState, dct_dp_hook

__all__ = ["DCTDPState", "dct_dp_hook"]
