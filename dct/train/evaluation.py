"""Evaluation over exactly ``data.eval_size`` rows, with every rank computing the same numbers.

The rows are read in whole global batches, so that every rank runs the same forward passes and
collectives; the last batch, when the rows do not fill it, is padded with the rows that follow
(a file source wraps around to its split's start), and each rank marks its padded rows, which
no metric counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import log_loss, roc_auc_score

from dct.comm.collectives import all_gather_cat
from dct.comm.meter import ByteMeter
from dct.data.criteo_format import DataError
from dct.data.rank_batches import RankReader
from dct.parallel.parallel_model import ParallelModel
from dct.runtime.faults import Diverged


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one evaluation. ``ne``: normalized entropy, the log-loss divided by the
    entropy of the rows' click rate (below 1: better than always predicting that rate; the
    metric of Meta's recommender papers). ``calibration``: predicted clicks over actual clicks
    (1: as many predicted as happened). ``gauc``: grouped AUC, where the data declares a group
    column (``grouped_auc``). ``None`` in records written before they existed."""

    auc: float
    logloss: float
    accuracy: float
    bayes_auc: float | None
    num_samples: int
    ne: float | None = None
    calibration: float | None = None
    gauc: float | None = None

    def scalars(self) -> dict[str, float]:
        out = {"eval/auc": self.auc, "eval/logloss": self.logloss, "eval/accuracy": self.accuracy}
        for name in ("bayes_auc", "ne", "calibration", "gauc"):
            if getattr(self, name) is not None:
                out[f"eval/{name}"] = getattr(self, name)
        return out


def num_eval_batches(eval_size: int, batch_size: int) -> int:
    """Global batches read to score ``eval_size`` rows: the last may be part padding."""
    return math.ceil(eval_size / batch_size)


@torch.no_grad()
def evaluate(
    model: ParallelModel,
    reader: RankReader,
    eval_size: int,
    meter: ByteMeter,
    split: str = "eval",
) -> EvalResult:
    """AUC, log-loss and accuracy of ``model`` on the first ``eval_size`` rows of ``split``
    (``eval``, or ``valid``: the rows held out of the train split), gathered from all ranks.

    Every rank gathers equal shapes, its first column marking the rows that count: rows past
    ``eval_size`` (the last batch's padding) and the rows of ranks without predictions (a
    pipeline's earlier stages) are marked out, so every rank computes the same numbers from
    the predicting ranks' rows, each scored once.
    """
    was_training = model.training
    model.eval()
    columns, groups = [], []
    for index in range(num_eval_batches(eval_size, reader.batch_size)):
        batch = reader.read(split, index)
        labels = batch.local.labels
        prob = model.predict(batch)
        scored = reader.sample_numbers(index).to(labels.device) < eval_size
        predicted = scored.to(labels.dtype) * float(prob is not None)
        truth = batch.local.click_prob
        known = [predicted, labels if prob is None else prob, labels]
        columns.append(
            torch.stack([c.float() for c in known + ([] if truth is None else [truth])], 1)
        )
        if batch.local.groups is not None:
            groups.append(batch.local.groups)
    model.train(was_training)
    world = model.topology.world_group
    gathered = all_gather_cat(torch.cat(columns), world, meter)
    table = gathered.cpu().double().numpy()
    counted = table[:, 0] == 1.0
    table = table[counted, 1:]
    prob, label = table[:, 0], table[:, 1]
    if not np.isfinite(prob).all():
        raise Diverged("the model predicts NaN or infinite click probabilities in evaluation")
    truth = table[:, 2] if table.shape[1] > 2 else None
    group = None
    if groups:  # int64 ids, gathered apart from the float columns that would round them
        group = all_gather_cat(torch.cat(groups), world, meter).cpu().numpy()[counted]
    return scores(prob, label, truth, group)


def scores(
    prob: np.ndarray,
    label: np.ndarray,
    truth: np.ndarray | None = None,
    group: np.ndarray | None = None,
) -> EvalResult:
    """Every metric of predictions ``prob`` for 0/1 ``label`` (float64), the truth's AUC where
    the true click probabilities are known, the grouped AUC where each row's ``group`` is;
    ``DataError`` for rows of one class."""
    area = auc(label, prob)  # first: it refuses rows of one class, whose entropy is 0
    logloss = float(log_loss(label, prob, labels=[0.0, 1.0]))
    rate = float(label.mean())
    return EvalResult(
        auc=area,
        logloss=logloss,
        accuracy=float(((prob >= 0.5) == (label >= 0.5)).mean()),
        bayes_auc=None if truth is None else auc(label, truth),
        num_samples=len(label),
        ne=logloss / -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate)),
        calibration=float(prob.sum() / label.sum()),
        gauc=None if group is None else grouped_auc(group, label, prob),
    )


def grouped_auc(group: np.ndarray, label: np.ndarray, score: np.ndarray) -> float | None:
    """GAUC: each group's AUC, averaged weighted by its rows, over the groups holding both
    classes (``None`` if none does). A group's AUC comes from the ranks of its scores (ties
    sharing their mean rank), as the Mann-Whitney statistic: one sort for all groups."""
    order = np.lexsort((score, group))
    g, y, s = group[order], label[order], score[order]
    new_group = np.r_[True, g[1:] != g[:-1]]
    starts = np.flatnonzero(new_group)
    sizes = np.diff(np.r_[starts, len(g)])
    within = np.arange(len(g)) - np.repeat(starts, sizes)  # 0-based place in its group
    runs = np.flatnonzero(new_group | np.r_[True, s[1:] != s[:-1]])  # tied scores: one run
    run_sizes = np.diff(np.r_[runs, len(g)])
    rank = np.repeat(within[runs] + 1 + (run_sizes - 1) / 2, run_sizes)
    index = np.repeat(np.arange(len(starts)), sizes)
    positives = np.bincount(index, weights=y, minlength=len(starts))
    negatives = sizes - positives
    rank_sum = np.bincount(index, weights=rank * y, minlength=len(starts))
    both = (positives > 0) & (negatives > 0)
    if not both.any():
        return None
    p, n = positives[both], negatives[both]
    areas = (rank_sum[both] - p * (p + 1) / 2) / (p * n)
    return float(np.average(areas, weights=sizes[both]))


def auc(label: np.ndarray, score: np.ndarray) -> float:
    """The ROC AUC of ``score`` for 0/1 ``label``; ``DataError`` where it is undefined (every
    row scored of one class), which only more eval rows can fix."""
    classes = np.unique(label)
    if len(classes) < 2:
        raise DataError(
            f"the {len(label)} eval rows scored all have label {classes[0]:g}: AUC is undefined; "
            "evaluate more rows (data.eval_size, or a larger eval split)"
        )
    return float(roc_auc_score(label, score))
