"""dct: hybrid-parallel training of DLRM-style recommenders with measured communication."""
