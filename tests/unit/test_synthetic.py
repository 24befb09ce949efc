"""Tests of the synthetic click generator: determinism, distributions and the teacher's signal."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from dct.config import RunConfig, SyntheticDataConfig
from dct.data.batch import Batch, SparseFeatures
from dct.data.hashed_normal import hashed_normal
from dct.data.sources import open_source, with_data_shape
from dct.data.synthetic import FIRST_ORDER_SIGNAL_STD, PAIRWISE_SIGNAL_STD, SyntheticClicks

EVAL_SAMPLES = 16384
# MLPerf's multi-hot Criteo: each of the 26 features' bag size.
MLPERF_BAGS = [3, 2, 1, 2, 6, 1, 1, 1, 1, 7, 3, 8, 1, 6, 9, 5, 1, 1, 1, 12, 100, 27, 10, 3, 1, 1]


@pytest.fixture(scope="module")
def clicks() -> SyntheticClicks:
    return SyntheticClicks(SyntheticDataConfig(), seed=0)


@pytest.fixture(scope="module")
def multi_hot() -> SyntheticClicks:
    return SyntheticClicks(SyntheticDataConfig(ids_per_feature=3), seed=0)


@pytest.fixture(scope="module")
def ragged() -> SyntheticClicks:
    return SyntheticClicks(SyntheticDataConfig(bag_sizes=MLPERF_BAGS), seed=0)


@pytest.fixture(scope="module")
def eval_batch(clicks: SyntheticClicks) -> Batch:
    return clicks.samples("eval", 0, EVAL_SAMPLES)


def concat(first: Batch, second: Batch) -> Batch:
    """The samples of ``first`` then ``second``, offsets of ``second`` shifted to follow on."""
    offsets = tuple(
        torch.cat([a, b[1:] + a[-1]]) for a, b in zip(first.sparse.offsets, second.sparse.offsets)
    )
    values = tuple(torch.cat(pair) for pair in zip(first.sparse.values, second.sparse.values))
    return Batch(
        dense=torch.cat([first.dense, second.dense]),
        sparse=SparseFeatures(values, offsets),
        labels=torch.cat([first.labels, second.labels]),
        click_prob=torch.cat([first.click_prob, second.click_prob]),
    )


def fields(batch: Batch) -> list[torch.Tensor]:
    sparse = [*batch.sparse.values, *batch.sparse.offsets]
    return [batch.dense, *sparse, batch.labels, batch.click_prob]


def assert_identical(actual: Batch, expected: Batch) -> None:
    """Bitwise equality of every field, dtypes included."""
    assert len(fields(actual)) == len(fields(expected))
    for a, e in zip(fields(actual), fields(expected)):
        assert a.dtype == e.dtype and torch.equal(a, e)


def stream_digest(batch: Batch) -> str:
    """A digest of the ids, offsets and labels of ``batch``."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in [*batch.sparse.values, *batch.sparse.offsets, batch.labels]:
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


@settings(max_examples=30, deadline=None)
@given(
    split=st.sampled_from(["train", "eval"]),
    bags=st.sampled_from(["one", "three", "mlperf"]),
    start=st.integers(0, 5000),
    count=st.integers(0, 300),
    cut_fraction=st.floats(0.0, 1.0),
)
def test_range_equals_its_parts_requested_separately(
    clicks: SyntheticClicks,
    multi_hot: SyntheticClicks,
    ragged: SyntheticClicks,
    split: str,
    bags: str,
    start: int,
    count: int,
    cut_fraction: float,
) -> None:
    source = {"one": clicks, "three": multi_hot, "mlperf": ragged}[bags]
    cut = int(cut_fraction * count)
    whole = source.samples(split, start, count)
    head = source.samples(split, start, cut)
    tail = source.samples(split, start + cut, count - cut)
    assert_identical(concat(head, tail), whole)
    assert_identical(whole.rows(cut, count), tail)


def test_same_seed_same_samples_and_other_seed_or_split_differs(clicks: SyntheticClicks) -> None:
    batch = clicks.samples("train", 100, 256)
    assert_identical(
        SyntheticClicks(SyntheticDataConfig(), seed=0).samples("train", 100, 256), batch
    )
    other_seed = SyntheticClicks(SyntheticDataConfig(), seed=1).samples("train", 100, 256)
    eval_stream = clicks.samples("eval", 100, 256)
    for other in (other_seed, eval_stream):
        assert not torch.equal(other.dense, batch.dense)
        assert not torch.equal(other.click_prob, batch.click_prob)
        assert not any(map(torch.equal, other.sparse.values, batch.sparse.values))


@pytest.mark.parametrize(
    ("ids_per_feature", "bag_sizes"), [(1, None), (3, None), (1, MLPERF_BAGS), (2, MLPERF_BAGS)]
)
def test_shapes_dtypes_ranges_and_offsets(
    ids_per_feature: int, bag_sizes: list[int] | None
) -> None:
    cfg = SyntheticDataConfig(ids_per_feature=ids_per_feature, bag_sizes=bag_sizes)
    bags = bag_sizes or [ids_per_feature] * len(cfg.cardinalities)
    n = 300
    batch = SyntheticClicks(cfg, seed=3).samples("train", 70, n)
    assert batch.num_samples == batch.sparse.num_samples == n
    assert batch.dense.shape == (n, cfg.num_dense) and batch.dense.dtype == torch.float32
    assert batch.labels.dtype == batch.click_prob.dtype == torch.float32
    assert set(batch.labels.unique().tolist()) <= {0.0, 1.0}
    assert ((batch.click_prob > 0) & (batch.click_prob < 1)).all()
    assert batch.sparse.num_features == len(cfg.cardinalities)
    for values, offsets, card, bag in zip(
        batch.sparse.values, batch.sparse.offsets, cfg.cardinalities, bags
    ):
        assert values.dtype == offsets.dtype == torch.int64
        assert torch.equal(offsets, torch.arange(0, n * bag + 1, bag))
        assert values.numel() == offsets[-1] and 0 <= values.min() and values.max() < card


@pytest.mark.parametrize(
    ("ids_per_feature", "digest"),
    [(1, "37373bc8752c5e6c93449cc300de61ef"), (3, "9b58a997bce92aef7ae15293e972a212")],
)
def test_equal_bag_sizes_keep_the_ids_per_feature_stream(ids_per_feature: int, digest: str) -> None:
    """``bag_sizes`` null draws the stream ``ids_per_feature`` always drew (pinned: docs and
    tests quote results on it), and ``bag_sizes=[k] * T`` draws it bit for bit too."""
    batch = SyntheticClicks(SyntheticDataConfig(ids_per_feature=ids_per_feature), seed=0).samples(
        "train", 100, 300
    )
    assert stream_digest(batch) == digest
    num_tables = len(SyntheticDataConfig().cardinalities)
    listed = SyntheticDataConfig(bag_sizes=[ids_per_feature] * num_tables)
    assert_identical(SyntheticClicks(listed, seed=0).samples("train", 100, 300), batch)


def test_max_rows_caps_the_model_tables_and_the_ids() -> None:
    """``with_data_shape`` caps every table at ``max_rows``, smaller tables as given; the ids
    drawn stay below the capped sizes, whether the generator gets the shaped config or not."""
    cfg = RunConfig(data=SyntheticDataConfig(cardinalities=KAGGLE, max_rows=1000))
    shaped = with_data_shape(cfg)
    capped = [min(rows, 1000) for rows in KAGGLE]
    assert shaped.data.cardinalities == capped and with_data_shape(shaped) == shaped
    batch = open_source(shaped).samples("train", 0, 4096)
    for ids, rows in zip(batch.sparse.values, capped):
        assert 0 <= ids.min() and ids.max() < rows
    assert len(batch.sparse.values[KAGGLE.index(10131227)].unique()) > 500
    assert_identical(SyntheticClicks(cfg.data, seed=cfg.seed).samples("train", 0, 4096), batch)
    assert with_data_shape(RunConfig()).data == RunConfig().data


def test_empty_range() -> None:
    batch = SyntheticClicks(SyntheticDataConfig(), seed=0).samples("eval", 64, 0)
    assert batch.num_samples == 0 and batch.dense.shape == (0, 13)
    assert all(torch.equal(o, torch.zeros(1, dtype=torch.int64)) for o in batch.sparse.offsets)


def test_dense_features_are_log1p_of_heavy_tailed_counts(eval_batch: Batch) -> None:
    counts = torch.expm1(eval_batch.dense.double())
    assert torch.allclose(counts, counts.round(), rtol=1e-5, atol=1e-5)
    zero_share = (counts.round() == 0).double().mean(dim=0)
    assert ((zero_share > 0.02) & (zero_share < 0.8)).all()
    median, top = counts.median(dim=0).values, counts.max(dim=0).values
    assert (top > 10 * median.clamp(min=1)).all()


def test_small_table_follows_zipf_law(eval_batch: Batch) -> None:
    """Sorted id frequencies of a 10-id table match P(rank r) ~ r^-s within 5 standard errors."""
    cfg = SyntheticDataConfig()
    table = cfg.cardinalities.index(10)
    counts = np.bincount(eval_batch.sparse.values[table].numpy(), minlength=10)
    mass = np.arange(1, 11, dtype=np.float64) ** -cfg.zipf_exponent
    expected = EVAL_SAMPLES * mass / mass.sum()
    observed = np.sort(counts)[::-1]
    assert np.all(np.abs(observed - expected) < 5 * np.sqrt(expected) + 1)


def test_large_table_is_skewed(eval_batch: Batch) -> None:
    cfg = SyntheticDataConfig()
    table = int(np.argmax(cfg.cardinalities))
    ids = eval_batch.sparse.values[table].numpy()
    counts = np.bincount(ids, minlength=cfg.cardinalities[table])
    assert counts.max() > 50 * max(np.median(counts), 1)


def test_labels_are_bernoulli_of_click_prob(eval_batch: Batch) -> None:
    """Within each decile of click_prob the click rate matches the mean probability."""
    prob, labels = eval_batch.click_prob.double(), eval_batch.labels.double()
    for part in torch.argsort(prob).chunk(10):
        p = prob[part].mean()
        error = torch.sqrt(p * (1 - p) / part.numel())
        assert abs(labels[part].mean() - p) < 5 * error


@pytest.mark.parametrize("bag_sizes", [None, [1, 3, 2, 5]])
def test_teacher_matches_naive_factorisation_machine(bag_sizes: list[int] | None) -> None:
    """The vectorised logit equals a per-sample loop over every pair of tables, reading the
    hidden teacher one id at a time (its rank is the inverse of the id map). A table's per-id
    effects shrink by the square root of its own bag size."""
    cardinalities = [7, 50, 3, 20]
    cfg = SyntheticDataConfig(
        cardinalities=cardinalities, ids_per_feature=2, bag_sizes=bag_sizes, teacher_scale=1.5
    )
    data = SyntheticClicks(cfg, seed=5)
    batch = data.samples("train", 10, 40)
    bags = bag_sizes or [2] * len(cardinalities)
    num_pairs = len(cardinalities) * (len(cardinalities) - 1) // 2
    vector_std = (PAIRWISE_SIGNAL_STD**2 / (num_pairs * cfg.teacher_dim)) ** 0.25
    dims = np.arange(cfg.teacher_dim)

    def weight(table: int, rank: int) -> float:
        std = FIRST_ORDER_SIGNAL_STD / np.sqrt(len(cardinalities) * bags[table])
        normal = hashed_normal(data._keys[table][0], np.array([rank]))[0]
        return std * data._effect_scale(table, np.array([rank]))[0] * normal

    def vector(table: int, rank: int) -> np.ndarray:
        std = vector_std / np.sqrt(bags[table])
        normal = hashed_normal(data._keys[table][1], rank * cfg.teacher_dim + dims)
        return std * data._effect_scale(table, np.array([rank]))[0] * normal

    def rank(table: int, id_: int) -> int:
        multiplier, shift = data._id_map[table]
        card = cfg.cardinalities[table]
        return (id_ - shift) * pow(multiplier, -1, card) % card

    for i in range(batch.num_samples):
        ranks = [
            [rank(t, int(j)) for j in ids[offsets[i] : offsets[i + 1]]]
            for t, (ids, offsets) in enumerate(zip(batch.sparse.values, batch.sparse.offsets))
        ]
        assert [len(r) for r in ranks] == bags
        first_order = sum(weight(t, r) for t, bag in enumerate(ranks) for r in bag)
        vectors = [sum(vector(t, r) for r in bag) for t, bag in enumerate(ranks)]
        pairs = itertools.combinations(vectors, 2)
        pairwise = sum(v @ u for v, u in pairs)
        counts = np.round(np.expm1(batch.dense[i].double().numpy()))
        dense = data._dense_weight @ np.log1p(counts)
        logit = data._bias + cfg.teacher_scale * (dense + first_order + pairwise)
        assert batch.click_prob[i].item() == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-5)


def test_default_click_rate_and_bayes_auc_are_criteo_like(
    clicks: SyntheticClicks, eval_batch: Batch
) -> None:
    labels, prob = eval_batch.labels.numpy(), eval_batch.click_prob.numpy()
    bayes_auc = roc_auc_score(labels, prob)
    assert 0.2 <= labels.mean() <= 0.35
    assert 0.75 <= bayes_auc <= 0.85

    train = clicks.samples("train", 0, EVAL_SAMPLES)
    dense_only = LogisticRegression(max_iter=1000).fit(train.dense.numpy(), train.labels.numpy())
    dense_auc = roc_auc_score(labels, dense_only.predict_proba(eval_batch.dense.numpy())[:, 1])
    assert dense_auc < bayes_auc - 0.1


@pytest.mark.parametrize(
    ("split", "start", "count"), [("test", 0, 1), ("train", -1, 1), ("eval", 0, -1)]
)
def test_bad_arguments_raise(clicks: SyntheticClicks, split: str, start: int, count: int) -> None:
    with pytest.raises(ValueError):
        clicks.samples(split, start, count)


def test_negative_seed_raises() -> None:
    with pytest.raises(ValueError):
        SyntheticClicks(SyntheticDataConfig(), seed=-1)


def test_config_is_exposed() -> None:
    cfg = dataclasses.replace(SyntheticDataConfig(), num_dense=5, cardinalities=[4, 9])
    data = SyntheticClicks(cfg, seed=0)
    assert data.num_dense == 5 and data.cardinalities == [4, 9]
    assert data.samples("train", 0, 8).dense.shape == (8, 5)


KAGGLE = [
    1460,
    583,
    10131227,
    2202608,
    305,
    24,
    12517,
    633,
    3,
    93145,
    5683,
    8351593,
    3194,
    27,
    14992,
    5461306,
    10,
    5652,
    2173,
    4,
    7046547,
    18,
    15,
    286181,
    105,
    142572,
]


def test_kaggle_scale_holds_little_and_draws_every_table_in_range() -> None:
    """33.76M rows: what the generator stores stays at its Zipf heads (26 x 512 KiB)."""
    data = SyntheticClicks(SyntheticDataConfig(cardinalities=KAGGLE), seed=0)
    stored = sum(
        a.nbytes
        for value in vars(data).values()
        for a in (value if isinstance(value, list) else [value])
        if isinstance(a, np.ndarray)
    )
    stored += sum(law._head_cdf.nbytes for law in data._laws)
    assert stored < 26 * 2**19 + 2**16
    batch = data.samples("train", 10**9, 4096)
    for ids, card in zip(batch.sparse.values, KAGGLE):
        assert 0 <= ids.min() and ids.max() < card
    huge = batch.sparse.values[KAGGLE.index(10131227)]
    assert len(huge.unique()) > 1000  # many distinct ids of the 10M-row table
