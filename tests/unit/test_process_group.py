import pytest
import torch
import torch.distributed as dist

from dct.config import ConfigError
from dct.runtime.process_group import choose_backend, distributed


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
    with pytest.raises(ConfigError, match="parallel.backend='mpi': use one of auto, gloo, nccl"):
        choose_backend("mpi")


def test_process_group_is_destroyed_when_the_run_fails(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(RuntimeError, match="boom"):
        with distributed("gloo", timeout_s=10):
            assert dist.is_initialized() and dist.get_world_size() == 1
            raise RuntimeError("boom")
    assert not dist.is_initialized()
