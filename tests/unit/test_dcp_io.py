"""Row blocks through DCP: saved as chunks of one tensor, loaded into any other blocks."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.distributed.checkpoint.api import CheckpointException

from dct.checkpoint.dcp_io import RowBlocks, load, read_metadata, save


def test_row_blocks_load_into_other_blocks_and_whole(tmp_path):
    table = torch.arange(40.0).view(10, 4)
    state = torch.arange(10.0)
    save(
        {
            "table": RowBlocks([table[:3], table[3:]], [0, 3], (10, 4)),
            "state": RowBlocks([state[:7], state[7:]], [0, 7], (10,)),
            "plain": torch.ones(2),
            "record": {"losses": [0.5, 0.25], "rng": torch.get_rng_state()},
        },
        tmp_path,
    )
    assert read_metadata(tmp_path).state_dict_metadata["table"].size == torch.Size([10, 4])

    blocks = [torch.zeros(6, 4), torch.zeros(1, 4)]
    whole = torch.zeros(10)
    loaded = {
        "table": RowBlocks(blocks, [2, 9], (10, 4)),
        "state": whole,
        "record": None,
    }
    load(loaded, tmp_path)
    assert torch.equal(blocks[0], table[2:8]) and torch.equal(blocks[1], table[9:])
    assert torch.equal(whole, state)
    assert loaded["record"]["losses"] == [0.5, 0.25]


class _Arbitrary:
    pass


def test_objects_load_without_arbitrary_pickle(tmp_path):
    """An object that only an arbitrary unpickler would rebuild is refused on load."""
    save({"record": {"evil": _Arbitrary()}}, tmp_path)
    with pytest.raises(CheckpointException, match="Weights only load failed"):
        load({"record": None}, tmp_path)
    assert pickle.dumps(_Arbitrary())  # it is picklable: only the loader refuses it
