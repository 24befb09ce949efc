"""The evaluation's metrics on fixed predictions, against values worked out by hand here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dct.data.criteo_format import DataError
from dct.train.evaluation import EvalResult, scores


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
