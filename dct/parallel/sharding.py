"""Which MP rank owns which embedding table."""

from __future__ import annotations

from typing import Sequence


def assign_tables(table_sizes: Sequence[int], mp_size: int) -> list[list[int]]:
    """Table indices per MP rank, whole tables, balanced by row count.

    Largest tables first, each to the rank with the fewest rows so far (ties: lower rank), so the
    busiest rank holds at most one table more than an even split of rows would give it. Each
    rank's list is ascending.
    """
    loads = [0] * mp_size
    owned: list[list[int]] = [[] for _ in range(mp_size)]
    for table in sorted(range(len(table_sizes)), key=lambda t: (-table_sizes[t], t)):
        rank = min(range(mp_size), key=lambda r: (loads[r], r))
        loads[rank] += table_sizes[table]
        owned[rank].append(table)
    return [sorted(tables) for tables in owned]
