"""The sharding planner: every row held once, balanced bytes, budgets honoured or refused."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dct.config import ConfigError
from dct.parallel.sharding import ShardingPlan, plan_sharding

ROW_BYTES = 68  # dim 16 fp32 weights + a row-wise Adagrad accumulator


def assert_every_row_held_once(plan: ShardingPlan, sizes: list[int]) -> None:
    for table, rows in enumerate(sizes):
        blocks = sorted(
            (s.start, s.stop) for shards in plan.shards for s in shards if s.table == table
        )
        edges = [0] + [stop for _, stop in blocks]
        assert [start for start, _ in blocks] == edges[:-1] and edges[-1] == rows
    for shards, load in zip(plan.shards, plan.loads):
        assert [s.table for s in shards] == sorted(s.table for s in shards)
        assert load == sum(len(s.rows) for s in shards) * ROW_BYTES


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 10_000), min_size=1, max_size=30),
    st.integers(1, 8),
    st.sampled_from(["auto", "table", "row"]),
)
def test_every_row_held_once_and_bytes_balanced(sizes, mp_size, mode):
    if mode == "table":
        mp_size = min(mp_size, len(sizes))
    plan = plan_sharding(sizes, mp_size, ROW_BYTES, mode)
    assert_every_row_held_once(plan, sizes)
    share = sum(sizes) * ROW_BYTES / mp_size
    if mode == "table":
        # Greedy on cost = bytes share + lookups share: no rank's cost passes the mean cost
        # (2 / mp_size) plus the largest table's, so no rank's bytes pass this.
        total = sum(sizes) * ROW_BYTES
        assert all(s.whole for shards in plan.shards for s in shards)
        assert max(plan.loads) <= 2 * share + max(sizes) * ROW_BYTES + total / len(sizes)
        tables = [len(shards) for shards in plan.shards]
        largest = max(sizes) * ROW_BYTES / total
        assert max(tables) <= len(sizes) * (2 / mp_size + largest) + 1
    else:
        # Cut tables add at most one row per rank beyond an even split; whole ones at most the
        # largest whole table, which is no more than an even share under auto.
        whole = [len(s.rows) for shards in plan.shards for s in shards if s.whole]
        largest_whole = max(whole, default=0) * ROW_BYTES
        assert max(plan.loads) <= share + largest_whole + len(sizes) * ROW_BYTES
    if mode == "row" and mp_size > 1:
        assert plan.row_wise == list(range(len(sizes)))


def test_auto_cuts_a_table_larger_than_an_even_share():
    plan = plan_sharding([1000, 400, 300, 200], 2, ROW_BYTES)
    assert plan.row_wise == [0]
    assert [[(s.table, s.start, s.stop) for s in shards] for shards in plan.shards] == [
        [(0, 0, 500), (1, 0, 400)],
        [(0, 500, 1000), (2, 0, 300), (3, 0, 200)],
    ]


def test_auto_cuts_a_table_that_fits_no_rank_whole_within_the_budget():
    sizes = [600, 550, 500, 300]  # none above the even share of 975 rows
    assert plan_sharding(sizes, 2, ROW_BYTES).row_wise == []
    # 600 and 550 go whole; 500 would take rank 1 to 1,050 rows and 300 then rank 1 to 1,100.
    plan = plan_sharding(sizes, 2, ROW_BYTES, budget_gb=1000 * ROW_BYTES / 2**30)
    assert plan.row_wise == [2, 3] and plan.loads == [1000 * ROW_BYTES, 950 * ROW_BYTES]
    assert_every_row_held_once(plan, sizes)


@pytest.mark.parametrize("mode", ["auto", "table", "row"])
def test_a_table_that_fits_nowhere_is_one_line_naming_table_and_budget(mode):
    rows = 3 * 2**30 // 4 // ROW_BYTES  # 0.75 GiB: not even half of it fits in 0.25 GiB
    with pytest.raises(ConfigError) as error:
        plan_sharding([10, rows, 20], 2, ROW_BYTES, mode, budget_gb=0.25)
    message = str(error.value)
    assert "\n" not in message
    assert f"table 1 ({rows} rows" in message and "parallel.memory_budget_gb=0.25" in message


def test_unknown_mode_is_an_error():
    with pytest.raises(ConfigError, match="parallel.sharding='rows': use one of auto, table, row"):
        plan_sharding([10], 1, ROW_BYTES, "rows")
