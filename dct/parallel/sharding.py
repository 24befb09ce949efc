"""Which MP rank holds which embedding rows: whole tables, or a table cut into row blocks.

A *table-wise* table lives whole on one MP rank. A *row-wise* table is cut into ``mp_size``
contiguous row blocks, block ``k`` on MP rank ``k``: each rank pools the ids that fall in its
block, and the all-to-all's receiver adds the partial sums (``dct.parallel.hybrid``).

The planner (``parallel.sharding``):

- ``table``: every table whole, largest first to the rank with the least *cost* so far: its
  share of all tables' bytes plus its share of all lookups (every shard pools every sample of
  the MP group, so each costs one lookup a bag whatever its size): bytes bound memory, lookups
  the step, and balancing bytes alone would put Kaggle's three largest tables on one rank and
  the other 23 on the other;
- ``row``: every table cut into row blocks;
- ``auto``: a table goes row-wise when it alone holds more than an even share of all the
  tables' bytes (one rank would carry it while the others idle) or when it fits whole on no
  rank within ``parallel.memory_budget_gb``; the rest go whole as with ``table``.

A table's bytes are its rows times ``bytes_per_row`` (weights plus the table optimizer's state).
A budget that some table cannot fit under is a ``ConfigError`` naming the table and the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from dct.config import ConfigError
from dct.config.checks import check_sharding


@dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of table ``table``, which has ``table_rows`` rows in all."""

    table: int
    start: int
    stop: int
    table_rows: int

    @property
    def rows(self) -> range:
        return range(self.start, self.stop)

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.stop == self.table_rows


@dataclass(frozen=True)
class ShardingPlan:
    """``shards[r]``: MP rank ``r``'s shards, ascending by table; ``loads[r]``: their bytes."""

    shards: list[list[Shard]]
    loads: list[int]

    @property
    def table_sizes(self) -> list[int]:
        """Every table's rows, by table number."""
        sizes = {s.table: s.table_rows for shards in self.shards for s in shards}
        return [sizes[t] for t in range(len(sizes))]

    @property
    def row_wise(self) -> list[int]:
        return sorted({s.table for shards in self.shards for s in shards if not s.whole})

    def describe(self) -> str:
        """One line per MP rank, for the start-up log."""
        lines = []
        for rank, (shards, load) in enumerate(zip(self.shards, self.loads)):
            whole = [s.table for s in shards if s.whole]
            blocks = ", ".join(f"{s.table}[{s.start}:{s.stop}]" for s in shards if not s.whole)
            lines.append(
                f"mp rank {rank}: {load / 2**30:.3f} GiB, tables {whole}"
                + (f", row blocks [{blocks}]" if blocks else "")
            )
        return "\n".join(lines)


def row_blocks(table: int, rows: int, mp_size: int) -> list[Shard]:
    """Table ``table`` cut into ``mp_size`` contiguous blocks as even as can be."""
    cuts = [k * rows // mp_size for k in range(mp_size + 1)]
    return [Shard(table, cuts[k], cuts[k + 1], rows) for k in range(mp_size)]


def _budget_error(
    table: int, rows: int, table_bytes: int, budget_gb: float, mp_size: int, mode: str
) -> ConfigError:
    fixes = "raise the budget, add MP ranks" + (
        " or use parallel.sharding=auto to cut it into row blocks" if mode == "table" else ""
    )
    return ConfigError(
        f"table {table} ({rows} rows, {table_bytes / 2**30:.3f} GiB with its optimizer state) "
        f"fits no rank within parallel.memory_budget_gb={budget_gb:g} across {mp_size} MP "
        f"rank(s): {fixes}"
    )


def plan_sharding(
    table_sizes: Sequence[int],
    mp_size: int,
    bytes_per_row: int,
    mode: str = "auto",
    budget_gb: float | None = None,
) -> ShardingPlan:
    """The plan for ``table_sizes`` over ``mp_size`` ranks (see the module docstring).

    Raises ``ConfigError`` for an unknown ``mode`` or a table that fits no rank's budget.
    """
    check_sharding(mode)
    budget_bytes = None if budget_gb is None else budget_gb * 2**30
    sizes = [rows * bytes_per_row for rows in table_sizes]
    share = sum(sizes) / mp_size
    loads = [0] * mp_size
    shards: list[list[Shard]] = [[] for _ in range(mp_size)]

    def place_row_wise(table: int) -> None:
        for rank, block in enumerate(row_blocks(table, table_sizes[table], mp_size)):
            block_bytes = len(block.rows) * bytes_per_row
            if budget_bytes is not None and loads[rank] + block_bytes > budget_bytes:
                rows = table_sizes[table]
                raise _budget_error(table, rows, sizes[table], budget_gb, mp_size, mode)
            loads[rank] += block_bytes
            shards[rank].append(block)

    total = max(sum(sizes), 1)

    def cost(rank: int) -> float:
        """A rank's share of all bytes plus its share of all lookups (one per table a bag)."""
        return loads[rank] / total + len(shards[rank]) / len(sizes)

    order = sorted(range(len(sizes)), key=lambda t: (-sizes[t], t))
    split = mp_size > 1 and mode != "table"
    row_wise = [t for t in order if split and (mode == "row" or sizes[t] > share)]
    for table in row_wise:
        place_row_wise(table)
    for table in order:
        if table in row_wise:
            continue
        rank = min(range(mp_size), key=lambda r: (cost(r), r))
        if budget_bytes is None or loads[rank] + sizes[table] <= budget_bytes:
            loads[rank] += sizes[table]
            shards[rank].append(Shard(table, 0, table_sizes[table], table_sizes[table]))
        elif split:
            place_row_wise(table)
        else:
            rows = table_sizes[table]
            raise _budget_error(table, rows, sizes[table], budget_gb, mp_size, mode)
    return ShardingPlan([sorted(s, key=lambda x: x.table) for s in shards], loads)
