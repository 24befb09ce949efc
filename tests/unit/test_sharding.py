from hypothesis import given, settings
from hypothesis import strategies as st

from dct.parallel.sharding import assign_tables


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=30), st.integers(1, 8))
def test_every_table_owned_once_and_load_balanced(sizes, mp_size):
    mp_size = min(mp_size, len(sizes))
    plan = assign_tables(sizes, mp_size)

    owned = [t for tables in plan for t in tables]
    assert sorted(owned) == list(range(len(sizes)))
    assert all(tables == sorted(tables) and tables for tables in plan)
    loads = [sum(sizes[t] for t in tables) for tables in plan]
    assert max(loads) <= sum(sizes) / mp_size + max(sizes)


def test_plan_is_deterministic_and_balances_a_known_case():
    assert assign_tables([10, 1, 1, 8, 2], 2) == [[0, 1], [2, 3, 4]]  # 11 rows each
    assert assign_tables([5, 5, 5, 5], 4) == [[0], [1], [2], [3]]
