"""What a real run writes into its directory and prints.

- A run refused by its config or its checkpoint leaves the directory it was pointed at
  byte for byte as it was: a finished run's recorded config, log and metrics still describe it.
- An accepted run records in ``.hydra/`` what Hydra itself writes there (the reference: the same
  run with ``hydra.output_subdir=.hydra``, Hydra writing at once), and its ``train.log``.
- Other libraries' INFO lines (FBGEMM's, with the test extras installed) are not printed, dct's
  are; ``output.log_level=debug`` prints them all.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.test_launch import SMALL, launch

CHECKPOINTED = [*SMALL, "train.checkpoint_every=4"]
# A line of the job's log format: [time][logger][LEVEL] - message
LOG_LINE = re.compile(r"^\[[^\]]*\]\[(?P<logger>[^\]]+)\]\[(?P<level>[A-Z]+)\] - ")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A one-process run of 12 steps, checkpointed every 4, its TensorBoard events written."""
    run_dir = tmp_path_factory.mktemp("finished")
    done = launch([*CHECKPOINTED, f"hydra.run.dir={run_dir}"], nproc=None)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, done


def snapshot(run_dir: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory (``None``) under ``run_dir``, but the node locks:
    a job claiming the directory writes its name there before anything else runs
    (``dct.runtime.run_dir``)."""
    return {
        str(path.relative_to(run_dir)): None if path.is_dir() else path.read_bytes()
        for path in sorted(run_dir.rglob("*"))
        if not path.name.startswith(".lock.node")
    }


def log_lines(done: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(logger, level) of every line printed in the job's log format."""
    found = (LOG_LINE.match(line) for line in (done.stdout + done.stderr).splitlines())
    return [(match["logger"], match["level"]) for match in found if match]


def third_party_info(done: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    return [
        (logger, level)
        for logger, level in log_lines(done)
        if level in ("INFO", "DEBUG") and logger != "dct" and not logger.startswith("dct.")
    ]


@pytest.mark.parametrize(
    "overrides, says",
    [
        (["parallel.mp_size=3"], "config error: "),
        (["model.top_mlp=[32]"], "was written for another model"),
    ],
    ids=["config-error", "checkpoint-of-another-model"],
)
def test_a_refused_run_changes_nothing_in_a_finished_runs_directory(
    finished, tmp_path, overrides, says
):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    before = snapshot(run_dir)
    assert {".hydra/config.yaml", "train.log", "metrics.json", "tensorboard"} <= set(before)

    done = launch([*CHECKPOINTED, *overrides, f"hydra.run.dir={run_dir}"], nproc=None)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert says in output and "Traceback" not in output
    after = snapshot(run_dir)
    assert sorted(after) == sorted(before)
    assert [name for name in before if after[name] != before[name]] == []


def test_a_refused_run_leaves_a_fresh_directory_without_a_record(tmp_path):
    done = launch([*SMALL, "parallel.mp_size=3", f"hydra.run.dir={tmp_path}"], nproc=None)
    assert done.returncode == 2, (done.stdout + done.stderr)[-3000:]
    assert snapshot(tmp_path) == {}


def test_an_accepted_run_records_what_hydra_writes(finished, tmp_path):
    run_dir, _ = finished
    done = launch([*CHECKPOINTED, "hydra.output_subdir=.hydra", f"hydra.run.dir={tmp_path}"], None)
    assert done.returncode == 0, done.stderr[-3000:]

    for name in ("config.yaml", "overrides.yaml"):
        assert (run_dir / ".hydra" / name).read_bytes() == (tmp_path / ".hydra" / name).read_bytes()

    def hydra_settings(directory: Path) -> dict:
        """hydra.yaml but what differs between the two runs by construction."""
        settings = yaml.safe_load((directory / ".hydra" / "hydra.yaml").read_text())["hydra"]
        for key in ("run", "output_subdir"):
            settings.pop(key)
        settings["overrides"].pop("hydra")
        settings["runtime"].pop("output_dir")
        return settings

    assert hydra_settings(run_dir) == hydra_settings(tmp_path)

    def logged(directory: Path) -> list[tuple[str, str]]:
        lines = (directory / "train.log").read_text().splitlines()
        return [(m["logger"], m["level"]) for m in map(LOG_LINE.match, lines) if m]

    assert logged(run_dir) == logged(tmp_path)
    assert ("dct.train.run", "INFO") in logged(run_dir)


@pytest.mark.parametrize("nproc", [None, 2], ids=["one-process", "torchrun-2"])
def test_no_third_party_info_line_is_printed(finished, nproc, tmp_path):
    if nproc is None:
        done = finished[1]
    else:
        args = [*SMALL, "parallel.mp_size=2", f"hydra.run.dir={tmp_path}"]
        done = launch(args, nproc=nproc)
        assert done.returncode == 0, done.stderr[-3000:]
    assert third_party_info(done) == []
    printed = log_lines(done)
    assert ("dct.train.run", "INFO") in printed and ("dct.train.loop", "INFO") in printed


@pytest.mark.skipif(
    importlib.util.find_spec("fbgemm_gpu") is None,
    reason="FBGEMM (the test extras) is not installed",
)
def test_debug_prints_other_libraries_info_lines(tmp_path):
    done = launch([*SMALL, "output.log_level=debug", f"hydra.run.dir={tmp_path}"], nproc=None)
    assert done.returncode == 0, done.stderr[-3000:]
    # FBGEMM logs through the root logger when it loads and when it builds its kernel.
    assert ("root", "INFO") in third_party_info(done)
    assert ("dct.train.run", "INFO") in log_lines(done)
