"""Cutting a DLRM into stages, against the uncut model's own forward pass."""

import pytest
import torch

from dct.config import SyntheticDataConfig
from dct.data.synthetic import SyntheticClicks
from models.dlrm import DLRM
from models.stages import CutError, cut_names, split_model

DATA = SyntheticDataConfig(cardinalities=[40, 7, 90])


def model() -> DLRM:
    return DLRM(DATA.num_dense, [32, 24, 16], DATA.cardinalities, [20, 12], seed=3)


def run_stages(stages, batch) -> torch.Tensor:
    x = None
    for stage in stages:
        x = stage(
            x, batch.dense if stage.is_first else None, batch.sparse if stage.reads_ids else None
        )
    return x


def test_cut_names_follow_the_forward_order_and_exclude_the_final_layer():
    assert cut_names(model()) == [
        "bottom_mlp.0",
        "bottom_mlp.1",
        "bottom_mlp.2",
        "top_mlp.0",
        "top_mlp.1",
    ]


@pytest.mark.parametrize(
    "cuts, widths, reads_ids",
    [
        ([], [None], [True]),
        (["bottom_mlp.0"], [32, None], [False, True]),
        (["top_mlp.1", "bottom_mlp.2"], [16, 12, None], [False, True, False]),
        (["bottom_mlp.0", "bottom_mlp.1", "top_mlp.0"], [32, 24, 20, None], [0, 0, 1, 0]),
    ],
)
def test_stages_run_in_turn_are_the_model_bit_for_bit(cuts, widths, reads_ids):
    net = model()
    batch = SyntheticClicks(DATA, seed=0).samples("train", 0, 48)
    stages = split_model(net, cuts)
    assert [s.out_width for s in stages] == widths
    assert [s.reads_ids for s in stages] == [bool(r) for r in reads_ids]
    assert [s.is_first for s in stages] == [i == 0 for i in range(len(stages))]
    assert torch.equal(run_stages(stages, batch), net(batch))
    owned = [p for s in stages for p in s.parameters()]
    assert len(owned) == len(list(net.parameters()))
    assert {id(p) for p in owned} == {id(p) for p in net.parameters()}


@pytest.mark.parametrize(
    "cuts, message",
    [
        (["top_mlp.2"], r"unknown cut\(s\) \['top_mlp.2'\]"),
        (["mlp.1"], r"unknown cut\(s\) \['mlp.1'\]"),
        (["bottom_mlp.1", "bottom_mlp.1"], "name a layer twice"),
    ],
)
def test_cuts_that_do_not_split_the_model_are_named(cuts, message):
    with pytest.raises(CutError, match=message):
        split_model(model(), cuts)
