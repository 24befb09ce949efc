"""Synthetic Criteo-like click samples labelled by a hidden teacher model.

Each sample has ``num_dense`` heavy-tailed counts (Criteo's I1..I13: floor of a lognormal, with a
share of zeros), given to the model as ``log1p(count)``, and a bag of ids per categorical
table, drawn Zipf-skewed like Criteo's C1..C26: ``bag_sizes[t]`` ids for table ``t`` (MLPerf's
multi-hot Criteo has 1 to 100), or ``ids_per_feature`` for every table. ``max_rows`` caps every
table's rows (``capped_cardinalities``). A teacher fixed by the seed scores each sample with a
factorisation machine::

    logit = bias + teacher_scale * (w . dense / std(dense)
                                    + sum_t w_t[ids_t] + sum_{t<u} <v_t[ids_t], v_u[ids_u]>)

(multi-hot bags sum their ids' weights and vectors; frequent ids get larger weights and vectors,
as a model can only learn the ids it sees often), ``click_prob = sigmoid(logit)`` and the label
is a Bernoulli draw from it. The bias is solved for at construction so the click rate is
``TARGET_CLICK_RATE``. Because the true click probability is known, the Bayes AUC (the best any
model can reach on the noisy labels) is known too, which makes a trained model's AUC meaningful.
A DLRM can represent this teacher: an embedding per id, dot interactions and MLPs.

Nothing stored grows with a table's rows, so Criteo Kaggle's 33.76M rows (``data=synthetic_kaggle``)
cost what 26 small tables do: ids follow a ``ZipfLaw`` (exact head, closed-form tail), rank ``r``
maps to id ``(a r + b) mod n``, and the teacher's per-id weights and vectors are ``hashed_normal``
draws keyed by (seed, table, rank), computed for the ids a batch holds.

Samples come in fixed blocks of ``BLOCK_SIZE``, each from its own generator seeded by
``(seed, split, block)``, so sample ``i`` is the same however a range is requested: ranks that
each ask for their slice of a global batch see exactly what a single process would.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dct.config import SyntheticDataConfig
from dct.data.batch import Batch, SparseFeatures
from dct.data.hashed_normal import hashed_normal, stream_key
from dct.data.zipf import ZipfLaw, power_sum

BLOCK_SIZE = 64
TARGET_CLICK_RATE = 0.26
# Standard deviation each teacher term contributes to the logit (before ``teacher_scale``).
DENSE_SIGNAL_STD = 0.5
FIRST_ORDER_SIGNAL_STD = 1.0
PAIRWISE_SIGNAL_STD = 1.0
# A per-id effect's std grows as P(id) ** POPULARITY_EXPONENT: the signal sits mostly on ids seen
# often enough to learn, so a DLRM gets near the Bayes AUC within a few hundred steps.
POPULARITY_EXPONENT = 0.5
# Ranges the per-feature dense distributions are drawn from: lognormal location and scale of
# the count, and the share of zero counts.
DENSE_LOG_MEAN = (0.0, 4.0)
DENSE_LOG_STD = (0.5, 1.5)
DENSE_ZERO_SHARE = (0.05, 0.5)
CALIBRATION_BLOCKS = 64

_SPLITS = {"train": 0, "eval": 1}
_CALIBRATION_STREAM = 2
_TEACHER_STREAM = 3


def _affine_permutation(rng: np.random.Generator, n: int) -> tuple[int, int]:
    """``(a, b)`` with ``gcd(a, n) == 1``, so ``r -> (a r + b) mod n`` permutes ``[0, n)``."""
    while True:
        multiplier = int(rng.integers(1, max(n, 2)))
        if math.gcd(multiplier, n) == 1:
            return multiplier, int(rng.integers(0, n))


def capped_cardinalities(cfg: SyntheticDataConfig) -> list[int]:
    """Each table's rows: ``cfg.cardinalities``, each at most ``cfg.max_rows`` where set."""
    if cfg.max_rows is None:
        return list(cfg.cardinalities)
    return [min(rows, cfg.max_rows) for rows in cfg.cardinalities]


def _generator(*key: int) -> np.random.Generator:
    """An independent stream for each distinct key (SeedSequence hashes the whole key)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


class SyntheticClicks:
    """Criteo-like click samples labelled by a hidden teacher model.

    ``num_dense`` and ``cardinalities`` describe the features, for building the model; the
    teacher stays private. ``samples`` is a pure function of (seed, config, split, index).

    Example::

        data = SyntheticClicks(SyntheticDataConfig(), seed=0)
        batch = data.samples("train", start=step * 1024 + rank * 256, count=256)
    """

    def __init__(self, cfg: SyntheticDataConfig, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed={seed} must be >= 0")
        self.num_dense = cfg.num_dense
        self.cardinalities = capped_cardinalities(cfg)
        self._seed = seed
        num_tables = len(self.cardinalities)
        bags = cfg.bag_sizes
        self._bags = [cfg.ids_per_feature] * num_tables if bags is None else list(bags)
        self._scale = cfg.teacher_scale
        rng = _generator(seed, _TEACHER_STREAM)
        self._log_mean = rng.uniform(*DENSE_LOG_MEAN, cfg.num_dense)
        self._log_std = rng.uniform(*DENSE_LOG_STD, cfg.num_dense)
        self._zero_share = rng.uniform(*DENSE_ZERO_SHARE, cfg.num_dense)

        num_pairs = max(num_tables * (num_tables - 1) // 2, 1)
        # A table's bag sums its ``bag`` draws, so shrink its per-id effects by sqrt(bag): each
        # table adds the same variance to the logit whatever its bag size.
        self._weight_std = [
            FIRST_ORDER_SIGNAL_STD / np.sqrt(num_tables * bag) for bag in self._bags
        ]
        # A dot of two teacher_dim vectors with entry std a has variance teacher_dim * a**4.
        vector_std = (PAIRWISE_SIGNAL_STD**2 / (num_pairs * cfg.teacher_dim)) ** 0.25
        self._vector_std = [vector_std / np.sqrt(bag) for bag in self._bags]
        self._laws = [ZipfLaw(card, cfg.zipf_exponent) for card in self.cardinalities]
        # Per-id effects scale as P(id) ** POPULARITY_EXPONENT, normalised so their variance,
        # averaged over draws, stays as set above: sum_r P(r) * scale(r)**2 == 1.
        power = 1.0 + 2.0 * POPULARITY_EXPONENT
        self._effect_norm = [
            np.sqrt(power_sum(law.n, law.exponent * power) / law.total**power) for law in self._laws
        ]
        self._teacher_dim = cfg.teacher_dim
        # Rank r of table t is id (a_t * r + b_t) mod n_t, a_t coprime to n_t: a permutation kept
        # as two numbers, so id order says nothing about frequency and nothing grows with n_t.
        self._id_map = [_affine_permutation(rng, card) for card in self.cardinalities]
        self._keys = [
            (stream_key(seed, _TEACHER_STREAM, t, 0), stream_key(seed, _TEACHER_STREAM, t, 1))
            for t in range(num_tables)
        ]

        # Dense weights act on features scaled to unit variance, so each means the same whatever
        # the feature's spread; the spreads and the bias come from a separate calibration stream.
        dense, ranks, _ = self._draw(_CALIBRATION_STREAM, 0, CALIBRATION_BLOCKS)
        dense_weight = rng.normal(0.0, DENSE_SIGNAL_STD / np.sqrt(cfg.num_dense), cfg.num_dense)
        self._dense_weight = dense_weight / np.maximum(dense.std(axis=0), 1e-6)
        self._bias = self._calibrate_bias(self._scale * self._signal(dense, ranks))

    def samples(self, split: str, start: int, count: int) -> Batch:
        """Samples ``start : start + count`` of ``split``, "train" or "eval" (independent streams).

        Raises ``ValueError`` for another split, a negative start or a negative count.
        """
        if split not in _SPLITS:
            raise ValueError(f"split={split!r} is unknown; use one of {sorted(_SPLITS)}")
        if start < 0:
            raise ValueError(f"start={start} must be >= 0")
        if count < 0:
            raise ValueError(f"count={count} must be >= 0")
        first_block = start // BLOCK_SIZE
        num_blocks = -(-(start + count) // BLOCK_SIZE) - first_block
        dense, ranks, label_noise = self._draw(_SPLITS[split], first_block, num_blocks)
        logit = self._bias + self._scale * self._signal(dense, ranks)
        prob = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
        labels = (label_noise < prob).astype(np.float32)

        skip = start - first_block * BLOCK_SIZE
        rows = slice(skip, skip + count)
        # One buffer per field, split into disjoint per-table views.
        ids = np.concatenate(
            [self._ids(t, table[:, rows].T).reshape(-1) for t, table in enumerate(ranks)]
        )
        offsets = np.concatenate(
            [np.arange(0, count * bag + 1, bag, dtype=np.int64) for bag in self._bags]
        )
        return Batch(
            dense=torch.from_numpy(np.ascontiguousarray(dense[rows], dtype=np.float32)),
            sparse=SparseFeatures(
                values=torch.from_numpy(ids).split([count * bag for bag in self._bags]),
                offsets=torch.from_numpy(offsets).split(count + 1),
            ),
            labels=torch.from_numpy(labels[rows].copy()),
            click_prob=torch.from_numpy(prob[rows].copy()),
        )

    def _draw(
        self, stream: int, first_block: int, num_blocks: int
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Whole blocks ``first_block ...`` of ``stream``: log1p dense [n, num_dense] (float64),
        popularity ranks, one [bag_t, n] (int64) per table ``t``, and the uniforms that draw
        the labels [n]."""
        n = num_blocks * BLOCK_SIZE
        normal = np.empty((n, self.num_dense))
        # Columns: one per dense zero mask, one per id (table-major), then one for the label.
        uniform = np.empty((n, self.num_dense + sum(self._bags) + 1))
        for b in range(num_blocks):
            rng = _generator(self._seed, stream, first_block + b)
            block = slice(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE)
            rng.standard_normal(out=normal[block])
            rng.random(out=uniform[block])

        counts = np.floor(np.exp(self._log_mean + self._log_std * normal))
        counts[uniform[:, : self.num_dense] < self._zero_share] = 0.0
        ranks = []
        first = self.num_dense
        for law, bag in zip(self._laws, self._bags):
            id_uniform = uniform[:, first : first + bag].T.reshape(-1)
            ranks.append(law.ranks(id_uniform).reshape(bag, n))
            first += bag
        return np.log1p(counts), ranks, uniform[:, -1]

    def _signal(self, dense: np.ndarray, ranks: list[np.ndarray]) -> np.ndarray:
        """The teacher's logit before bias and scale, [n] float64.

        Every sum runs over an outer axis or an explicit loop, which numpy accumulates in the
        same order whatever the number of rows; a matmul's rounding may depend on it, and each
        sample's value must not.
        """
        n = len(dense)
        signal = np.zeros(n)
        for j in range(self.num_dense):
            signal += self._dense_weight[j] * dense[:, j]
        vector_sum = np.zeros((n, self._teacher_dim))
        square_sum = np.zeros((n, self._teacher_dim))
        for t, table in enumerate(ranks):
            signal += self._weight(t, table).sum(axis=0)
            bags = self._vector(t, table).sum(axis=0)
            vector_sum += bags
            square_sum += bags * bags
        # sum over table pairs t<u of <v_t, v_u> = (|sum_t v_t|^2 - sum_t |v_t|^2) / 2
        pairwise = 0.5 * (vector_sum * vector_sum - square_sum)
        for c in range(self._teacher_dim):
            signal += pairwise[:, c]
        return signal

    def _effect_scale(self, table: int, ranks: np.ndarray) -> np.ndarray:
        law = self._laws[table]
        return law.prob(ranks) ** POPULARITY_EXPONENT / self._effect_norm[table]

    def _weight(self, table: int, ranks: np.ndarray) -> np.ndarray:
        """The teacher's first-order weight of each rank of ``table``, same shape as ``ranks``."""
        normal = hashed_normal(self._keys[table][0], ranks)
        return self._weight_std[table] * self._effect_scale(table, ranks) * normal

    def _vector(self, table: int, ranks: np.ndarray) -> np.ndarray:
        """The teacher's vector of each rank of ``table``, ``ranks.shape + (teacher_dim,)``."""
        dim = self._teacher_dim
        index = ranks[..., None] * dim + np.arange(dim)
        scale = self._vector_std[table] * self._effect_scale(table, ranks)[..., None]
        return scale * hashed_normal(self._keys[table][1], index)

    def _ids(self, table: int, ranks: np.ndarray) -> np.ndarray:
        multiplier, shift = self._id_map[table]
        return (ranks * multiplier + shift) % self.cardinalities[table]

    @staticmethod
    def _calibrate_bias(scaled_signal: np.ndarray) -> float:
        """The bias at which the mean click probability over ``scaled_signal`` is the target."""
        low, high = -50.0, 50.0
        for _ in range(60):
            mid = 0.5 * (low + high)
            rate = np.mean(1.0 / (1.0 + np.exp(-(mid + scaled_signal))))
            low, high = (mid, high) if rate < TARGET_CLICK_RATE else (low, mid)
        return 0.5 * (low + high)
