import pytest

from dct.config import ConfigError
from dct.parallel.topology import GridShape


def test_valid_grid_sizes():
    shape = GridShape(world_size=8, mp_size=4, num_tables=26)
    assert (shape.dp_size, shape.mp_size) == (2, 4)


@pytest.mark.parametrize(
    "world, mp, tables, message",
    [
        (4, 3, 26, "does not divide the world size 4: choose an mp_size among [1, 2, 4]"),
        (4, 0, 26, "parallel.mp_size=0 must be >= 1"),
        (8, 8, 5, "exceeds the number of embedding tables (5) with parallel.sharding=table"),
    ],
)
def test_impossible_grid_says_what_to_change(world, mp, tables, message):
    with pytest.raises(ConfigError) as error:
        GridShape(world_size=world, mp_size=mp, num_tables=tables)
    assert message in str(error.value)


def test_more_mp_ranks_than_tables_when_tables_may_be_cut():
    assert GridShape(world_size=8, mp_size=8, num_tables=5, whole_tables=False).dp_size == 1
