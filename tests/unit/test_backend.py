import pytest
import torch

from dct.config import ConfigError
from dct.parallel.process_group import choose_backend


def test_auto_picks_nccl_on_gpu_else_gloo():
    backend = choose_backend("auto")
    expected = "nccl" if torch.cuda.is_available() else "gloo"
    assert backend.name == expected
    assert backend.device.type == ("cuda" if expected == "nccl" else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_nccl_without_gpu_says_what_to_use():
    with pytest.raises(ConfigError, match="needs a CUDA GPU; use gloo or auto"):
        choose_backend("nccl")


def test_unknown_backend_is_named():
    with pytest.raises(ConfigError, match="parallel.backend='mpi' is unknown"):
        choose_backend("mpi")
