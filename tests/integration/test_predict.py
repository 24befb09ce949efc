"""``dct-predict`` against the trained model's own predictions.

One real ``torchrun`` job trains on 2 ranks, ``mp_size=2`` (each table on one rank), on a
``dct-preprocess`` directory made from a Parquet training file and a CSV eval file. Scoring the
eval file with ``dct-predict`` must give what the exported model gives on the eval split read
through ``TabularClicks``: the same encoding (vocabularies, out-of-vocabulary rows, dense
statistics, multi-valued bags) and the same model. The same rows without their label column,
as Parquet, score the same; unseen values are counted as ``dct-preprocess`` counted them; every
user mistake is one ``error:`` line and exit status 2, and Ctrl-C leaves no output behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from dct.data.tabular import TabularClicks
from dct.data.tabular_format import read_manifest
from dct.data.tabular_preprocess import preprocess
from dct.export import export
from dct.predict.scoring import main
from models.dlrm import DLRM
from tests.integration.test_launch import REPO, launch
from tests.time_limit import scaled

SCHEMA = """\
label: {column: click}
dense:
  - {column: price, transform: standardize}
  - {column: views, transform: log1p, fill: -1}
sparse:
  - {column: city, min_count: 2}
  - {column: item, hash_buckets: 11}
  - {column: tags, multi_valued: true, separator: "|"}
"""
# The same columns, item's and city's values in one table each shared with another column's,
# tags averaged.
SHARED_SCHEMA = """\
label: {column: click}
dense:
  - {column: price, transform: standardize}
sparse:
  - {column: city, min_count: 2}
  - {column: item, hash_buckets: 11}
  - {column: tags, multi_valued: true, separator: "|", table: item, hash_buckets: 11, pooling: mean}
  - {column: req, table: city, min_count: 2}
"""
TRAIN_ROWS, EVAL_ROWS, BATCH, STEPS = 160, 64, 32, 8
CITIES = ["paris", "rome", "oslo", "lima", "kyiv", "baku"]


def rows(n: int, seed: int, unseen: list[str]) -> dict[str, list]:
    """``n`` rows; the cities of ``unseen`` appear only here (out of vocabulary elsewhere)."""
    rng = np.random.default_rng(seed)
    cities = CITIES + unseen
    tags = [
        [str(t) for t in rng.choice(9, size=rng.integers(0, 4), replace=False)] for _ in range(n)
    ]
    return {
        "req": [f"r{seed}-{i:03d}" for i in range(n)],
        "click": rng.integers(0, 2, n).tolist(),
        "price": [None if i % 9 == 4 else float(x) for i, x in enumerate(rng.gamma(2.0, 10.0, n))],
        "views": [None if i % 7 == 3 else float(x) for i, x in enumerate(rng.integers(0, 50, n))],
        "city": [
            None if i % 11 == 5 else cities[j]
            for i, j in enumerate(rng.integers(0, len(cities), n))
        ],
        "item": rng.integers(0, 40, n).tolist(),
        "tags": [t if t else None for t in tags],
    }


def write_csv(path: Path, table: dict[str, list]) -> Path:
    def cell(value: object) -> str:
        if value is None:
            return ""
        return "|".join(value) if isinstance(value, list) else str(value)

    lines = [",".join(table)]
    lines += [",".join(cell(table[c][i]) for c in table) for i in range(len(table["req"]))]
    path.write_text("\n".join(lines) + "\n")
    return path


def train_on(root: Path, schema: str) -> dict[str, Path]:
    """Files, the preprocessed directory and the last checkpoint of a 2-rank run on it."""
    (root / "schema.yaml").write_text(schema)
    train_file = root / "train.parquet"
    pq.write_table(pa.table(rows(TRAIN_ROWS, 0, [])), train_file)
    eval_rows = rows(EVAL_ROWS, 1, ["atlantis", "eldorado"])
    eval_csv = write_csv(root / "eval.csv", eval_rows)
    no_label = root / "new.parquet"
    pq.write_table(pa.table({k: v for k, v in eval_rows.items() if k != "click"}), no_label)
    data = root / "data"
    preprocess(root / "schema.yaml", data, [train_file], eval_sources=[eval_csv])
    run_dir = root / "run"
    done = launch(
        [
            "data=tabular",
            f"data.path={data}",
            f"data.eval_size={EVAL_ROWS}",
            "parallel.mp_size=2",
            f"train.steps={STEPS}",
            f"train.batch_size={BATCH}",
            "train.log_every=4",
            "train.eval_every=8",
            "train.checkpoint_every=4",
            "output.progress_bar=false",
            "output.tensorboard=false",
            f"hydra.run.dir={run_dir}",
        ],
        nproc=2,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = run_dir / "checkpoints" / f"step_{STEPS:08d}"
    return {
        "root": root,
        "data": data,
        "eval_csv": eval_csv,
        "no_label": no_label,
        "checkpoint": checkpoint,
        "run_dir": run_dir,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    return train_on(tmp_path_factory.mktemp("predict"), SCHEMA)


def reference(trained: dict[str, Path], tmp_path: Path) -> np.ndarray:
    """The exported model's click probabilities on the eval split as training stored it."""
    meta = export(trained["checkpoint"], tmp_path / "model.pt")
    shape = meta["fingerprint"]
    model = DLRM(
        shape["data.num_dense"],
        shape["model.bottom_mlp"],
        shape["data.cardinalities"],
        shape["model.top_mlp"],
        seed=0,
        features=read_manifest(trained["data"]).features,
    )
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    batch = TabularClicks(trained["data"]).samples("eval", 0, EVAL_ROWS)
    with torch.inference_mode():
        return torch.sigmoid(model.eval()(batch)).numpy()


def predict(capsys, *args: object) -> tuple[int, str, str]:
    """``dct-predict`` with ``args``: its exit status, stdout and stderr."""
    code = main([str(a) for a in args])
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def test_scores_equal_the_trained_models_own(trained, tmp_path, capsys):
    """The eval CSV scored from the 2-rank checkpoint: exactly the exported model's
    probabilities on the eval split, in input order, next to the id column; the unseen values
    counted as dct-preprocess counted them."""
    expected = reference(trained, tmp_path)
    out = tmp_path / "scores.parquet"
    code, printed, errors = predict(
        capsys, trained["checkpoint"], trained["eval_csv"], "--out", out, "--id-column", "req"
    )
    assert code == 0, errors
    table = pq.read_table(out)
    assert table.column_names == ["req", "probability"]
    assert table["req"].to_pylist() == [f"r1-{i:03d}" for i in range(EVAL_ROWS)]
    np.testing.assert_array_equal(table["probability"].to_numpy(), expected)
    unseen = read_manifest(trained["data"]).unseen_eval_values
    assert unseen["city"] > 0
    assert f"{sum(unseen.values()):,} values out of vocabulary" in printed


def test_shared_tables_and_mean_pooling_score_as_trained(tmp_path_factory, tmp_path, capsys):
    """A run whose columns share tables (a vocabulary, a hashed table) and average a bag: the
    checkpoint records the layout, and dct-predict applies it as training did."""
    shared = train_on(tmp_path_factory.mktemp("shared"), SHARED_SCHEMA)
    meta = export(shared["checkpoint"], tmp_path / "model.pt")
    assert meta["fingerprint"]["data.feature_tables"] == [0, 1, 1, 0]
    assert meta["fingerprint"]["data.pooling"] == ["sum", "sum", "mean", "sum"]
    expected = reference(shared, tmp_path)
    out = tmp_path / "scores.parquet"
    code, _, errors = predict(capsys, shared["checkpoint"], shared["eval_csv"], "--out", out)
    assert code == 0, errors
    np.testing.assert_array_equal(pq.read_table(out)["probability"].to_numpy(), expected)
    # The run's checkpoints/ directory stands for its newest checkpoint, the last step's.
    newest = tmp_path / "newest.parquet"
    checkpoints = shared["checkpoint"].parent
    code, printed, errors = predict(capsys, checkpoints, shared["eval_csv"], "--out", newest)
    assert code == 0 and f"by the step-{STEPS} model" in printed, errors
    assert pq.read_table(newest).equals(pq.read_table(out))


def test_rows_without_a_label_in_small_batches_score_the_same(trained, tmp_path, capsys):
    """Parquet (tags as lists) without the label column, then the CSV file, --data given, 5 rows
    a batch: within 1e-6, as a batch of 5 rows is multiplied by other kernels than one of 64
    (the last bit of a few probabilities differs)."""
    expected = reference(trained, tmp_path)
    out = tmp_path / "new.parquet"
    code, _, errors = predict(
        capsys,
        trained["checkpoint"],
        trained["no_label"],
        trained["eval_csv"],
        "--out",
        out,
        "--data",
        trained["data"],
        "--batch-rows",
        5,
    )
    assert code == 0, errors
    table = pq.read_table(out)
    assert table.column_names == ["probability"]
    np.testing.assert_allclose(
        table["probability"].to_numpy(), np.concatenate([expected, expected]), rtol=0, atol=1e-6
    )


def one_error(capsys, *args: object) -> str:
    code, printed, errors = predict(capsys, *args)
    assert code == 2, errors
    lines = errors.splitlines()
    assert printed == "" and len(lines) == 1 and lines[0].startswith("error: "), errors
    return lines[0]


def rewrite(source: Path, out: Path, change) -> Path:
    pq.write_table(change(pq.read_table(source)), out)
    return out


def handwritten(trained: dict, path: Path, data: dict | None) -> Path:
    """The trained checkpoint's weights and meta saved as one process's checkpoint at ``path``,
    its ``data`` record replaced by ``data`` (left out when ``None``)."""
    from dct.checkpoint import dcp_io

    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.parent / f"{path.name}.pt"
    meta = export(trained["checkpoint"], scratch)
    state = {f"model/{k}": v for k, v in torch.load(scratch).items()}
    scratch.unlink()
    meta = {k: v for k, v in meta.items() if k != "data"}
    if data is not None:
        meta["data"] = data
    dcp_io.save({**state, "meta": meta}, path)
    return path


def test_each_mistake_is_one_line_and_leaves_no_output(trained, tmp_path, capsys):
    checkpoint, new = trained["checkpoint"], trained["no_label"]
    out = tmp_path / "p.parquet"
    cases = {
        "no such checkpoint": (tmp_path / "nowhere", new),
        "has no column 'price'": (
            checkpoint,
            rewrite(new, tmp_path / "a.parquet", lambda t: t.drop_columns(["price"])),
        ),
        "no such file": (checkpoint, tmp_path / "missing.csv"),
    }
    for expected, (ckpt, source) in cases.items():
        assert expected in one_error(capsys, ckpt, source, "--out", out)
    line = one_error(capsys, checkpoint, new, "--out", out, "--id-column", "user")
    assert "--id-column 'user' is not a column of" in line
    assert "is a directory" in one_error(capsys, checkpoint, new, "--out", tmp_path)

    # The checkpoint records its data, so it scores away from its run directory too; a record
    # pointing where the data no longer is asks for --data.
    alone = tmp_path / "alone" / "step"
    shutil.copytree(checkpoint, alone)
    code, _, errors = predict(capsys, alone, new, "--out", out)
    assert code == 0, errors
    out.unlink()
    gone = handwritten(trained, tmp_path / "gone_ckpt", {"path": str(tmp_path / "gone")})
    line = one_error(capsys, gone, new, "--out", out)
    assert f"{tmp_path / 'gone'}, the preprocessed directory" in line and "--data DIR" in line

    # Without a record (checkpoints written before it), the run's Hydra config names the data;
    # a relative data.path is where the run was started (Hydra's runtime.cwd).
    relative = tmp_path / "relative"
    shutil.copytree(trained["run_dir"] / ".hydra", relative / ".hydra")
    config, hydra = relative / ".hydra" / "config.yaml", relative / ".hydra" / "hydra.yaml"
    config.write_text(config.read_text().replace(f"path: {trained['data']}", "path: data"))
    hydra.write_text(hydra.read_text().replace(f"cwd: {REPO}", f"cwd: {trained['root']}"))
    handwritten(trained, relative / "checkpoints" / checkpoint.name, None)
    code, printed, errors = predict(
        capsys, relative / "checkpoints" / checkpoint.name, new, "--out", out
    )
    assert code == 0 and f"encoded by {trained['data']};" in printed, errors
    out.unlink()

    # The directory rebuilt with another schema (one dense column fewer) after training.
    schema = tmp_path / "other.yaml"
    schema.write_text(SCHEMA.replace("  - {column: views, transform: log1p, fill: -1}\n", ""))
    rebuilt = tmp_path / "rebuilt"
    preprocess(schema, rebuilt, [trained["root"] / "train.parquet"], [trained["eval_csv"]])
    line = one_error(capsys, checkpoint, new, "--out", out, "--data", rebuilt)
    assert "was preprocessed again after training" in line or "is not the one" in line
    assert not out.exists() and list(tmp_path.glob("*.partial")) == []


def test_a_recorded_schema_fingerprint_must_match_the_manifests(trained, tmp_path, capsys):
    """A checkpoint whose meta records its data's schema fingerprint is refused for a directory
    of the same shape but another schema (the record rewritten by hand)."""
    manifest = read_manifest(trained["data"])
    checkpoints = {}
    for name, fingerprint in (("same", manifest.schema_fingerprint), ("other", "f" * 64)):
        record = {"path": str(trained["data"]), "schema_fingerprint": fingerprint}
        checkpoints[name] = handwritten(trained, tmp_path / name, record)
    out = tmp_path / "p.parquet"
    code, _, errors = predict(capsys, checkpoints["same"], trained["no_label"], "--out", out)
    assert code == 0, errors
    line = one_error(capsys, checkpoints["other"], trained["no_label"], "--out", out)
    assert "is not the one" in line and "ffffffffffff" in line


def test_ctrl_c_exits_130_and_leaves_no_file(trained, tmp_path, capsys, monkeypatch):
    import dct.predict.scoring

    scored = []
    real_score = dct.predict.scoring.score

    def interrupted(model, rows):
        scored.append(rows)
        if len(scored) == 2:
            raise KeyboardInterrupt
        return real_score(model, rows)

    monkeypatch.setattr(dct.predict.scoring, "score", interrupted)
    out = tmp_path / "p.parquet"
    code, _, errors = predict(
        capsys, trained["checkpoint"], trained["eval_csv"], "--out", out, "--batch-rows", 8
    )
    assert code == 130 and errors.splitlines() == [f"interrupted: {out} was not written"]
    assert list(tmp_path.iterdir()) == []


def test_the_command_exits_2_with_one_line(trained, tmp_path):
    """The real process: no traceback, nothing on stdout."""
    source = rewrite(
        trained["no_label"], tmp_path / "a.parquet", lambda t: t.drop_columns(["city"])
    )
    done = subprocess.run(
        [sys.executable, "-m", "dct.predict.scoring", str(trained["checkpoint"]), str(source)]
        + ["--out", str(tmp_path / "p.parquet")],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=REPO,
        timeout=scaled(120),
    )
    assert done.returncode == 2 and done.stdout == "", done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {source} has no column 'city'")
