"""``models.feature_tables``: the layout's checks, and mean pooling's divisor against bag lengths
counted here (an empty bag's sum stays zero)."""

from __future__ import annotations

import pytest
import torch

from models.feature_tables import FeatureTables, mean_scale


def test_the_default_layout_is_a_summed_table_per_feature():
    layout = FeatureTables.build([10, 20, 30], [], [])
    assert layout == FeatureTables.one_per_feature([10, 20, 30]) and layout.is_default()
    shared = FeatureTables.build([10, 20], [0, 1, 0], ["sum", "mean", "sum"])
    assert not shared.is_default()
    assert shared.features_of(0) == [0, 2] and shared.feature_rows == [10, 20, 10]
    assert shared.pooling() == ["sum", "mean", "sum"]


@pytest.mark.parametrize(
    "tables, pooling, message",
    [
        ([0, 0], [], "every one of the 2 tables must be looked up"),
        ([0, 2], [], "every one of the 2 tables"),
        ([0, 1], ["sum"], "1 pooling modes for 2 features"),
        ([0, 1], ["sum", "max"], "pooling 'max' is unknown"),
    ],
)
def test_an_impossible_layout_is_refused(tables, pooling, message):
    with pytest.raises(ValueError, match=message):
        FeatureTables.build([5, 6], tables, pooling)


def test_mean_scale_divides_by_each_bag_length():
    lengths = [[2, 0, 1, 4], [1, 1, 1, 1]]
    offsets = [torch.tensor([0, *torch.tensor(n).cumsum(0).tolist()]) for n in lengths]
    assert mean_scale(offsets, [False, False]) is None
    scale = mean_scale(offsets, [True, False])
    assert scale.shape == (4, 2, 1)
    assert scale[:, 0, 0].tolist() == [0.5, 1.0, 1.0, 0.25]  # the empty bag: 1 x a zero sum
    assert scale[:, 1, 0].tolist() == [1.0] * 4
