"""Finding duplicate bags, against a brute-force reference, and pooling only the distinct ones,
against pooling every bag: rebuilt rows bitwise equal, for single- and multi-hot, empty and
all-duplicate batches."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dct.comm.dct_mp import KeptCounter
from dct.comm.dedup_all_to_all import expand
from dct.compression import bag_dedup
from dct.compression.bag_dedup import dedup_bags
from dct.data.batch import SparseFeatures
from dct.parallel.embedding_dedup import pool_dedup


def bags_of(values: torch.Tensor, offsets: torch.Tensor) -> list[tuple[int, ...]]:
    return [tuple(values[a:b].tolist()) for a, b in zip(offsets[:-1], offsets[1:])]


def jagged(lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(x) for x in lists], dtype=torch.long)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    values = torch.tensor([i for x in lists for i in x], dtype=torch.long)
    return values, offsets


bag_lists = st.integers(1, 4).flatmap(
    lambda groups: st.tuples(
        st.just(groups),
        st.integers(0, 6).flatmap(
            lambda per: st.lists(
                st.lists(st.integers(0, 5), max_size=3),
                min_size=groups * per,
                max_size=groups * per,
            )
        ),
    )
)


def check_against_reference(lists: list[list[int]], groups: int) -> None:
    values, offsets = jagged(lists)
    per = len(lists) // groups
    found = dedup_bags(values, offsets, torch.arange(len(lists)) // max(per, 1), groups)
    bags = bags_of(values, offsets)
    starts = (found.counts.cumsum(0) - found.counts).tolist()
    assert found.counts.sum() == found.representatives.numel()
    for g in range(groups):
        block = bags[g * per : (g + 1) * per]
        reps = found.representatives[starts[g] : starts[g] + found.counts[g]].tolist()
        assert all(g * per <= r < (g + 1) * per for r in reps)
        assert sorted(bags[r] for r in reps) == sorted(set(block))  # each distinct bag once
        for i in range(g * per, (g + 1) * per):
            assert bags[reps[found.index[i]]] == bags[i]


@settings(max_examples=200, deadline=None)
@given(bag_lists)
def test_dedup_bags_match_brute_force(case):
    groups, lists = case
    check_against_reference(lists, groups)


@settings(max_examples=50, deadline=None)
@given(case=bag_lists)
def test_hash_collisions_fall_back_to_comparing_ids(monkeypatch_fold, case):
    groups, lists = case
    check_against_reference(lists, groups)


@pytest.fixture(scope="module")
def monkeypatch_fold():
    """Every multi-hot bag of a block hashes alike: only the row comparison tells them apart."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bag_dedup, "_fold", lambda keys: keys if keys.ndim == 1 else keys[:, 0])
        yield


def test_bags_are_keyed_by_ids_in_order():
    values, offsets = jagged([[1, 2], [2, 1], [1, 2], [], [3], [], [3, 3], [3]])
    found = dedup_bags(values, offsets, torch.arange(8) // 4, groups=2)
    assert found.counts.tolist() == [3, 3]
    assert found.index[0] == found.index[2] != found.index[1]


def test_blocks_need_not_be_consecutive():
    """Bags 0, 2 in block 1 and 1, 3 in block 0: each block's distinct bags, in block order."""
    values, offsets = jagged([[4], [4], [4], [6]])
    found = dedup_bags(values, offsets, torch.tensor([1, 0, 1, 0]), groups=2)
    assert found.counts.tolist() == [2, 1]
    assert found.representatives.tolist() == [1, 3, 0]
    assert found.index.tolist() == [0, 0, 0, 1]


def test_a_block_number_per_bag_is_required():
    with pytest.raises(ValueError, match="block numbers"):
        dedup_bags(torch.tensor([1, 2, 3]), torch.arange(4), torch.zeros(2, dtype=torch.long), 2)


TABLES, DIM, ROWS = 3, 4, 6


def pool_with(tables: list[torch.nn.EmbeddingBag]):
    def pool(sparse: SparseFeatures) -> torch.Tensor:
        pairs = zip(tables, sparse.values, sparse.offsets)
        return torch.cat([t(v, o) for t, v, o in pairs], dim=1)

    return pool


def features(per_table: list[list[list[int]]]) -> SparseFeatures:
    values, offsets = zip(*(jagged(lists) for lists in per_table))
    return SparseFeatures(values, offsets)


def random_lists(samples: int, lengths: tuple[int, int], seed: int) -> list[list[list[int]]]:
    """Per table, ``samples`` bags of ``lengths[0]`` to ``lengths[1]`` ids."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(TABLES):
        sizes = torch.randint(lengths[0], lengths[1] + 1, (samples,), generator=g).tolist()
        out.append([torch.randint(0, ROWS, (n,), generator=g).tolist() for n in sizes])
    return out


BATCHES = {
    "single-hot": random_lists(24, (1, 1), 0),
    "multi-hot": random_lists(24, (0, 3), 1),
    "empty bags": [[[] for _ in range(24)] for _ in range(TABLES)],
    "all duplicates": [[[2, 5] for _ in range(24)] for _ in range(TABLES)],
    "no samples": [[] for _ in range(TABLES)],
}


@pytest.mark.parametrize("name", list(BATCHES))
def test_distinct_vectors_rebuild_every_pooled_row(name):
    """Per destination, the distinct vectors indexed by sample are the rows pooling every bag
    gives: bitwise. The gradient reaching the tables is the same too (summed in another
    order: float tolerance)."""
    torch.manual_seed(0)
    tables = [
        torch.nn.EmbeddingBag(ROWS, DIM, mode="sum", include_last_offset=True)
        for _ in range(TABLES)
    ]
    sparse = features(BATCHES[name])
    destinations = 3
    per = sparse.num_samples // destinations
    counter = KeptCounter()
    sent = pool_dedup(sparse, destinations, DIM, pool_with(tables), counter, me=1)
    reference = pool_with(tables)(sparse)
    rebuilt = torch.cat(
        [
            expand(rows, index, counts)
            for rows, index, counts in zip(
                sent.rows.split(sent.counts.sum(1).tolist()), sent.index.split(per), sent.counts
            )
        ]
    ).view(reference.shape)
    assert torch.equal(rebuilt, reference)
    assert counter.offered == 2 * per * TABLES
    assert counter.kept == int(sent.counts[[0, 2]].sum())
    weights = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    grads = []
    for out in (rebuilt, reference):
        for t in tables:
            t.zero_grad()
        (out * weights).sum().backward()
        grads.append([t.weight.grad for t in tables])
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    if name == "all duplicates":
        assert sent.counts.tolist() == [[1] * TABLES] * destinations
