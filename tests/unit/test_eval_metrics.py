"""The evaluation's metrics on fixed predictions, against values worked out by hand here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dct.data.criteo_format import DataError
from dct.train.evaluation import EvalResult, grouped_auc, scores


def test_normalized_entropy_and_calibration_by_hand():
    # 4 rows, 1 click: click rate 1/4, base entropy H = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.562335.
    label = np.array([1.0, 0.0, 0.0, 0.0])
    prob = np.array([0.5, 0.5, 0.25, 0.25])
    result = scores(prob, label)
    logloss = -(math.log(0.5) + math.log(0.5) + 2 * math.log(0.75)) / 4  # 0.490415
    assert result.logloss == pytest.approx(logloss)
    assert result.ne == pytest.approx(logloss / 0.5623351446188083)  # 0.872104
    assert result.calibration == pytest.approx(1.5 / 1.0)  # 1.5 clicks predicted, 1 happened
    assert result.auc == pytest.approx((0.5 + 1 + 1) / 3)  # the tie with a negative: a half
    assert result.accuracy == 0.75 and result.num_samples == 4


def test_predicting_the_click_rate_has_normalized_entropy_one_and_calibration_one():
    label = np.array([1.0, 0.0, 1.0, 0.0, 0.0])
    result = scores(np.full(5, 0.4), label)
    assert result.ne == pytest.approx(1.0) and result.calibration == pytest.approx(1.0)


def test_rows_of_one_class_are_a_data_error_not_a_division_by_zero():
    with pytest.raises(DataError, match="all have label 0"):
        scores(np.array([0.2, 0.3]), np.array([0.0, 0.0]))


def test_an_evaluation_recorded_before_these_metrics_still_loads():
    old = {"auc": 0.7, "logloss": 0.5, "accuracy": 0.8, "bayes_auc": None, "num_samples": 10}
    result = EvalResult(**old)
    assert result.ne is None and "eval/ne" not in result.scalars()


def sklearn_gauc(group, label, score):
    """Each group's AUC by scikit-learn, weighted by its rows, over groups with both classes."""
    total = weight = 0.0
    for g in np.unique(group):
        rows = group == g
        if 0 < label[rows].sum() < rows.sum():
            total += rows.sum() * roc_auc_score(label[rows], score[rows])
            weight += rows.sum()
    return total / weight


def test_grouped_auc_by_hand():
    # Group 7: scores 0.9 (click), 0.2, 0.5 -> the click beats both: AUC 1, 3 rows.
    # Group -3: 0.4 (click), 0.4 (no click) -> a tie: AUC 0.5, 2 rows. Group 5: clicks only.
    group = np.array([7, 7, 7, -3, -3, 5])
    label = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    score = np.array([0.9, 0.2, 0.5, 0.4, 0.4, 0.1])
    assert grouped_auc(group, label, score) == pytest.approx((3 * 1.0 + 2 * 0.5) / 5)
    assert grouped_auc(np.array([1, 2]), np.array([1.0, 0.0]), np.array([0.3, 0.6])) is None
    assert scores(score, label, group=group).gauc == pytest.approx(0.8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_auc_equals_scikit_learn_group_by_group(seed):
    rng = np.random.default_rng(seed)
    n = 500
    group = rng.integers(-(2**62), 2**62, 40)[rng.integers(0, 40, n)]  # ids as large as hashes
    label = (rng.random(n) < 0.3).astype(np.float64)
    score = np.round(rng.random(n), 1)  # many ties, within groups too
    assert grouped_auc(group, label, score) == pytest.approx(sklearn_gauc(group, label, score))
