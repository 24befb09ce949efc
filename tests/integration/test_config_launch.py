"""Config mistakes through the real entry point: refused before the process group starts, in
one line and exit code 2, and ``--help`` describing the keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRAIN = str(REPO / "launch" / "train.py")


def run(prefix: list[str], args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [*prefix, TRAIN, *args], capture_output=True, text=True, env=env, timeout=120, cwd=REPO
    )


def one_config_error(done: subprocess.CompletedProcess, message: str, ranks: int) -> None:
    """Exit 2, each rank's one ``config error:`` line, and nothing of a traceback or C++ frames."""
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    errors = [line for line in output.splitlines() if "config error:" in line]
    assert len(errors) == ranks and all(message in line for line in errors), output[-3000:]
    for trace in ("Traceback", "frame #", "peer error", "c10::"):
        assert trace not in output, output[-3000:]


def test_a_timeout_of_zero_is_refused_before_the_process_group_starts(tmp_path):
    done = run([sys.executable], ["parallel.timeout_s=0", f"hydra.run.dir={tmp_path}"])
    one_config_error(done, "parallel.timeout_s=0.0 must be > 0 (seconds)", ranks=1)
    assert not (tmp_path / "metrics.json").exists()


def test_a_negative_timeout_under_torchrun_is_one_line_per_rank(tmp_path):
    torchrun = [sys.executable, "-m", "dct.torchrun", "--standalone", "--nproc_per_node=2"]
    done = run(torchrun, ["parallel.timeout_s=-1", f"hydra.run.dir={tmp_path}"])
    one_config_error(done, "parallel.timeout_s=-1.0 must be > 0 (seconds)", ranks=2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data=criteo", "data.num_dense=1"], "data.num_dense is not a key of data=criteo"),
        (["data=criteo", "+data.cardinalities=[3]", "data.path=/nowhere"], "data.cardinalities"),
    ],
)
def test_a_key_of_another_data_source_is_one_line(overrides, message, tmp_path):
    done = run([sys.executable], [*overrides, f"hydra.run.dir={tmp_path}"])
    one_config_error(done, message, ranks=1)


def test_help_lists_keys_with_their_meaning_and_the_experiments():
    """The full check of the text is in tests/unit/test_config.py; this one checks that
    ``--help`` prints it."""
    done = run([sys.executable], ["--help"])
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split(maxsplit=2) for line in done.stdout.splitlines()]
    assert ["parallel.timeout_s", "[300]", "seconds a collective may wait for its peers"] in lines
    assert ["data.path", "[null]", "the preprocessed directory (required)"] in lines
    assert any(line[:1] == ["quickstart:"] for line in lines)
