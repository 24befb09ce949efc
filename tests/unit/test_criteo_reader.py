"""Reading preprocessed Criteo directories, against arrays the tests write themselves.

A directory is written here byte by byte from known numpy arrays and a manifest, independent of
the preprocessing code; the reader must hand back exactly those rows, split and wrapped as
documented, and refuse directories that do not hold together, naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dct.config import CriteoDataConfig, RunConfig
from dct.data.criteo import CriteoClicks
from dct.data.criteo_format import (
    DENSE_FILE,
    LABELS_FILE,
    MANIFEST,
    NUM_DENSE,
    NUM_SPARSE,
    SPARSE_FILE,
    DataError,
    Manifest,
    SourceFile,
    read_manifest,
)
from dct.data.sources import with_data_shape

TABLE_SIZES = [5 + t for t in range(NUM_SPARSE)]


def write_directory(path: Path, rows: int, options: dict | None = None, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "dense": rng.random((rows, NUM_DENSE), dtype=np.float32),
        "sparse": np.stack([rng.integers(0, n, rows) for n in TABLE_SIZES], 1).astype("<i4"),
        "labels": rng.integers(0, 2, rows).astype(np.uint8),
    }
    path.mkdir(parents=True)
    (path / DENSE_FILE).write_bytes(arrays["dense"].astype("<f4").tobytes())
    (path / SPARSE_FILE).write_bytes(arrays["sparse"].tobytes())
    (path / LABELS_FILE).write_bytes(arrays["labels"].tobytes())
    manifest = Manifest(
        rows=rows,
        table_sizes=TABLE_SIZES,
        options=options or {"mode": "hash", "hash_size": 100, "chunk_rows": 10},
        sources=[SourceFile("day_0.tsv", 123, "ab" * 32)],
    )
    (path / MANIFEST).write_text(manifest.to_json())
    return arrays


def expected_rows(arrays: dict, rows: np.ndarray) -> tuple:
    return arrays["dense"][rows], arrays["sparse"][rows], arrays["labels"][rows]


def assert_batch(batch, arrays: dict, rows: list[int]) -> None:
    dense, sparse, labels = expected_rows(arrays, np.array(rows))
    assert torch.equal(batch.dense, torch.from_numpy(dense))
    assert batch.labels.tolist() == labels.astype(np.float32).tolist()
    for t in range(NUM_SPARSE):
        assert batch.sparse.values[t].tolist() == sparse[:, t].tolist()
        assert batch.sparse.offsets[t].tolist() == list(range(len(rows) + 1))


def test_the_last_seventh_is_the_eval_split_and_splits_wrap(tmp_path):
    arrays = write_directory(tmp_path / "d", rows=70)
    source = CriteoClicks(tmp_path / "d")
    assert (source.split_rows("train"), source.split_rows("eval")) == (60, 10)
    assert source.table_sizes == TABLE_SIZES
    assert_batch(source.samples("train", 5, 4), arrays, [5, 6, 7, 8])
    assert_batch(source.samples("train", 58, 4), arrays, [58, 59, 0, 1])
    assert_batch(source.samples("eval", 8, 3), arrays, [68, 69, 60])


def test_a_second_directory_is_the_eval_split(tmp_path):
    write_directory(tmp_path / "train", rows=30)
    eval_arrays = write_directory(tmp_path / "eval", rows=8, seed=1)
    source = CriteoClicks(tmp_path / "train", tmp_path / "eval")
    assert (source.split_rows("train"), source.split_rows("eval")) == (30, 8)
    assert_batch(source.samples("eval", 6, 3), eval_arrays, [6, 7, 0])


def test_eval_directory_must_be_hashed_the_same_way(tmp_path):
    write_directory(tmp_path / "train", rows=30)
    write_directory(tmp_path / "eval", rows=8, options={"mode": "hash", "hash_size": 7})
    with pytest.raises(DataError, match="same options"):
        CriteoClicks(tmp_path / "train", tmp_path / "eval")
    vocab = {"mode": "vocab", "min_count": 2, "chunk_rows": 10}
    write_directory(tmp_path / "vt", rows=30, options=vocab)
    write_directory(tmp_path / "ve", rows=8, options=vocab)
    with pytest.raises(DataError, match="hash mode"):
        CriteoClicks(tmp_path / "vt", tmp_path / "ve")


def test_unusable_directories_are_named(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / 'nowhere'}: no such directory"):
        read_manifest(tmp_path / "nowhere")
    write_directory(tmp_path / "d", rows=20)
    (tmp_path / "d" / MANIFEST).rename(tmp_path / "d" / "saved.json")
    with pytest.raises(DataError, match="manifest.json is missing.*not a finished"):
        read_manifest(tmp_path / "d")
    (tmp_path / "d" / "saved.json").rename(tmp_path / "d" / MANIFEST)
    with (tmp_path / "d" / SPARSE_FILE).open("ab") as extra:
        extra.write(b"\0\0\0\0")
    with pytest.raises(DataError, match=f"{SPARSE_FILE} is 2084 bytes, but .* says 20 rows"):
        read_manifest(tmp_path / "d")
    (tmp_path / "d" / SPARSE_FILE).unlink()
    with pytest.raises(DataError, match=f"{SPARSE_FILE} is missing"):
        read_manifest(tmp_path / "d")


def test_a_manifest_from_another_version_or_garbled_is_refused(tmp_path):
    write_directory(tmp_path / "d", rows=20)
    path = tmp_path / "d" / MANIFEST
    path.write_text(path.read_text().replace('"format_version": 1', '"format_version": 9'))
    with pytest.raises(DataError, match="format version 9"):
        read_manifest(tmp_path / "d")
    path.write_text("{not json")
    with pytest.raises(DataError, match="not a valid manifest"):
        read_manifest(tmp_path / "d")


def criteo_config(path: Path, batch_size: int, eval_size: int | None) -> RunConfig:
    cfg = RunConfig()
    cfg.data = CriteoDataConfig(path=str(path), eval_size=eval_size)
    cfg.train = dataclasses.replace(cfg.train, batch_size=batch_size)
    return cfg


@pytest.mark.parametrize(
    "batch_size, eval_size, evaluated",
    [(32, None, 100), (32, 16384, 100), (32, 40, 40), (128, None, 100)],
)
def test_the_files_decide_the_model_shape_and_the_eval_size(
    batch_size, eval_size, evaluated, tmp_path
):
    """The 100 eval rows (the last 1/7 of 700): all of them by default, at most all of them,
    whatever the global batch. Every row is scored (``dct.train.evaluation`` pads the last
    batch), so nothing is cut to whole batches, and a split smaller than one batch (128) is
    no longer refused."""
    write_directory(tmp_path / "d", rows=700)
    shaped = with_data_shape(criteo_config(tmp_path / "d", batch_size, eval_size))
    assert shaped.data.cardinalities == TABLE_SIZES
    assert shaped.data.num_dense == NUM_DENSE
    assert shaped.data.eval_size == evaluated
    assert with_data_shape(shaped) == shaped


def poke_id(path: Path, row: int, table: int, value: int) -> None:
    sparse = np.memmap(path / SPARSE_FILE, dtype="<i4", mode="r+").reshape(-1, NUM_SPARSE)
    sparse[row, table] = value
    sparse.flush()


@pytest.mark.parametrize("value", [-1, -(2**31), TABLE_SIZES[6], 2**31 - 1])
def test_an_id_outside_its_table_is_a_data_error_naming_file_feature_id_and_size(tmp_path, value):
    write_directory(tmp_path / "d", rows=70)
    poke_id(tmp_path / "d", row=50, table=6, value=value)
    source = CriteoClicks(tmp_path / "d")
    source.samples("train", 0, 50)  # batches without the row read as before: checked per batch

    with pytest.raises(DataError) as error:
        source.samples("train", 45, 10)

    size = TABLE_SIZES[6]
    assert str(error.value) == (
        f"{tmp_path / 'd' / SPARSE_FILE}, row 50: feature C7 (table 6) has id {value}, outside "
        f"its table of {size} rows (ids must be in [0, {size}), as {tmp_path / 'd' / MANIFEST} "
        f"says); the files do not belong together: delete {tmp_path / 'd'} and run "
        "dct-preprocess-criteo again"
    )


def test_a_manifest_with_a_lowered_table_size_is_refused_in_either_split(tmp_path):
    arrays = write_directory(tmp_path / "train", rows=30)
    eval_arrays = write_directory(tmp_path / "eval", rows=8, seed=1)
    for directory, ids in ((tmp_path / "train", arrays), (tmp_path / "eval", eval_arrays)):
        manifest = json.loads((directory / MANIFEST).read_text())
        manifest["table_sizes"][20] = int(ids["sparse"][:, 20].max())
        (directory / MANIFEST).write_text(json.dumps(manifest))
    source = CriteoClicks(tmp_path / "train", tmp_path / "eval")
    for split, directory, ids in (
        ("train", tmp_path / "train", arrays),
        ("eval", tmp_path / "eval", eval_arrays),
    ):
        top = int(ids["sparse"][:, 20].max())
        with pytest.raises(DataError, match=f"^{directory / SPARSE_FILE}, row .*C21 .*id {top},"):
            source.samples(split, 0, len(ids["labels"]))


def test_ids_at_the_table_edges_are_accepted(tmp_path):
    write_directory(tmp_path / "d", rows=14)
    for row, value in ((0, 0), (1, TABLE_SIZES[25] - 1)):
        poke_id(tmp_path / "d", row=row, table=25, value=value)
    batch = CriteoClicks(tmp_path / "d").samples("train", 0, 12)
    assert batch.sparse.values[25][:2].tolist() == [0, TABLE_SIZES[25] - 1]
