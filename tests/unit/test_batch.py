import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dct.data.batch import Batch, SparseFeatures
from dct.data.criteo_format import DataError
from dct.data.rank_batches import RankReader

bags_strategy = st.lists(
    st.lists(st.lists(st.integers(0, 99), max_size=4), min_size=6, max_size=6),
    min_size=1,
    max_size=3,
)


def to_sparse(tables: list[list[list[int]]]) -> SparseFeatures:
    values = tuple(torch.tensor([i for bag in t for i in bag], dtype=torch.long) for t in tables)
    offsets = tuple(torch.tensor([0] + [len(bag) for bag in t]).cumsum(0) for t in tables)
    return SparseFeatures(values, offsets)


def to_bags(sparse: SparseFeatures) -> list[list[list[int]]]:
    return [
        [v[o[i] : o[i + 1]].tolist() for i in range(len(o) - 1)]
        for v, o in zip(sparse.values, sparse.offsets)
    ]


@settings(max_examples=50, deadline=None)
@given(bags_strategy, st.integers(0, 6), st.integers(0, 6))
def test_rows_and_tables_select_the_same_bags_as_lists(tables, a, b):
    start, stop = min(a, b), max(a, b)
    sparse = to_sparse(tables)
    assert to_bags(sparse.rows(start, stop)) == [t[start:stop] for t in tables]
    order = list(reversed(range(len(tables))))
    assert to_bags(sparse.features(order)) == [tables[i] for i in order]


class CountingSource:
    """Sample ``i`` has dense value ``i`` and id ``i`` in every table (offset by the table)."""

    def samples(self, split: str, start: int, count: int) -> Batch:
        index = torch.arange(start, start + count)
        sparse = SparseFeatures(
            tuple(index + 1000 * t for t in range(3)),
            tuple(torch.arange(count + 1) for _ in range(3)),
        )
        return Batch(index.float().unsqueeze(1), sparse, index.float())


def test_ranks_read_disjoint_slices_and_their_groups_ids():
    world, mp_size, batch_size, step = 4, 2, 16, 3
    readers = [
        RankReader(
            CountingSource(), batch_size, world, mp_size, rank, [rank % mp_size, 2], [4000] * 3
        )
        for rank in range(world)
    ]
    batches = [reader.read("train", step) for reader in readers]

    local = torch.cat([b.local.labels for b in batches])
    assert local.tolist() == list(range(step * batch_size, (step + 1) * batch_size))
    for rank, batch in enumerate(batches):
        group = rank // mp_size
        group_ids = list(range(step * 16 + group * 8, step * 16 + group * 8 + 8))
        assert batch.group_sparse.values[0].tolist() == [
            i + 1000 * (rank % mp_size) for i in group_ids
        ]
        assert batch.group_sparse.values[1].tolist() == [i + 2000 for i in group_ids]


class OneIdSource:
    """Every sample has id ``value`` in every table."""

    def __init__(self, value: int) -> None:
        self.value = value

    def samples(self, split: str, start: int, count: int) -> Batch:
        sparse = SparseFeatures(
            tuple(torch.full((count,), self.value) for _ in range(2)),
            tuple(torch.arange(count + 1) for _ in range(2)),
        )
        return Batch(torch.zeros(count, 1), sparse, torch.zeros(count))


@pytest.mark.parametrize("bad_id", [-1, 50, 10**9])
def test_an_id_outside_its_table_is_one_line_naming_feature_id_and_rows(bad_id):
    reader = RankReader(OneIdSource(bad_id), 8, 2, 2, 1, features=[1], feature_rows=[10**10, 50])
    with pytest.raises(DataError) as error:
        reader.read("train", 3)
    message = str(error.value)
    assert "\n" not in message
    assert "train batch 3" in message and "sparse feature 1 (counted from 0)" in message
    assert f"id {bad_id}," in message and "table of 50 rows" in message


def test_ids_at_the_table_edges_are_accepted():
    for value in (0, 49):
        batch = RankReader(OneIdSource(value), 8, 2, 2, 1, [1], [50, 50]).read("eval", 0)
        assert batch.group_sparse.values[0].tolist() == [value] * 8
