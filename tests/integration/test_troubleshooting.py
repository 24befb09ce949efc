"""README's Troubleshooting table against the code: every row's line and exit code is produced
for real by a named test, here or in the test module of its kind of fault.

``test_every_row_of_the_table_has_its_test`` parses the table, so a row added without a test,
or a test whose line or code drifted from the table, fails here.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

from tests.full_disk import fill, tiny_disk
from tests.integration.test_launch import REPO, SMALL, TRAIN
from tests.integration.test_runtime_faults import FAULTY, finish, job, one_line
from tests.time_limit import scaled

README = REPO / "README.md"
# The table's line prefix -> the tests producing it: (module, test, exit code).
ROWS = {
    "config error:": [
        ("tests.integration.test_troubleshooting", "test_hydra_config_mistakes_are_one_line", 2),
        (
            "tests.integration.test_troubleshooting",
            "test_under_dct_torchrun_a_config_error_exits_2",
            2,
        ),
    ],
    "data error:": [
        (
            "tests.integration.test_data_faults",
            "test_ids_beyond_a_lowered_table_size_stop_training_with_one_line",
            2,
        )
    ],
    "checkpoint error:": [
        ("tests.integration.test_checkpoint_errors", "test_unusable_checkpoint_is_one_line", 2)
    ],
    "run directory error:": [
        (
            "tests.integration.test_runtime_faults",
            "test_an_unusable_run_directory_is_one_line_before_anything_loads",
            2,
        )
    ],
    "no space left on": [
        (
            "tests.integration.test_troubleshooting",
            "test_a_full_disk_is_one_line_and_leaves_no_metrics_json",
            2,
        )
    ],
    "export error:": [
        ("tests.integration.test_export_errors", "test_out_a_directory_is_one_line", 2)
    ],
    "diverged:": [
        (
            "tests.integration.test_runtime_faults",
            "test_a_diverging_loss_stops_the_job_naming_the_step_and_the_learning_rate",
            1,
        )
    ],
    "peer error:": [
        ("tests.integration.test_runtime_faults", "test_a_hung_peer_is_named_after_the_timeout", 1)
    ],
    "interrupted at step": [
        (
            "tests.integration.test_runtime_faults",
            "test_a_second_job_is_refused_its_running_directory_and_ctrl_c_ends_the_first",
            130,
        ),
        (
            "tests.integration.test_runtime_faults",
            "test_sigterm_to_the_launcher_ends_the_job_with_143",
            143,
        ),
    ],
    "dct-torchrun:": [
        (
            "tests.integration.test_troubleshooting",
            "test_a_worker_killed_by_sigkill_ends_dct_torchrun_with_137",
            137,
        )
    ],
}


def table_rows() -> dict[str, set[int]]:
    """The Troubleshooting table: each row's line prefix (its first code span) -> exit codes."""
    section = README.read_text().split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"[\d, ]+", cells[1]):
            continue
        prefix = re.search(r"`([^`]+)`", cells[0]).group(1)
        rows[prefix] = {int(code) for code in cells[1].split(",")}
    return rows


def test_every_row_of_the_table_has_its_test():
    rows = table_rows()
    matched = {}
    for prefix, codes in rows.items():
        key = next((key for key in ROWS if prefix.startswith(key)), None)
        assert key is not None, f"the row `{prefix}` has no test in ROWS"
        matched[key] = codes
        assert {code for _, _, code in ROWS[key]} == codes, prefix
    assert set(matched) == set(ROWS), "ROWS names a line the table does not list"
    for key, tests in ROWS.items():
        for module_name, name, code in tests:
            module = importlib.import_module(module_name)
            test = getattr(module, name)
            assert key in inspect.getsource(test), f"{name} does not check `{key}`"
            assert re.search(rf"(returncode|code) == {code}\b", inspect.getsource(module)), name


def train(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``launch/train.py`` as one process."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    environ.pop("HYDRA_FULL_ERROR", None)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, TRAIN, *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=REPO,
        timeout=scaled(120),
    )


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "train.stpes=5",
            "Could not override 'train.stpes': Key 'stpes' not in 'TrainConfig'. To append to "
            "your config use +train.stpes=5.",
        ),
        (
            "train.steps=[",
            "train.steps=[: no viable alternative at input '['. See https://hydra.cc/docs/1.2/"
            "advanced/override_grammar/basic for details.",
        ),
        (
            "model=nope",
            "In 'train': Could not find 'model/nope'. Available options in 'model': deepfm, "
            "dlrm, dlrm_dcn, dlrm_paper.",
        ),
        (
            "train.steps=many",
            "Error merging override train.steps=many: Value 'many' of type 'str' could not be "
            "converted to Integer.",
        ),
    ],
    ids=["unknown-key", "bad-syntax", "unknown-option", "wrong-type"],
)
def test_hydra_config_mistakes_are_one_line(override, message, tmp_path):
    done = train([override, f"hydra.run.dir={tmp_path}"])
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"config error: {message}"]
    assert not list(tmp_path.iterdir()), "a refused run leaves its directory as it was"


def test_hydra_full_error_keeps_the_traceback(tmp_path):
    done = train(["train.stpes=5", f"hydra.run.dir={tmp_path}"], env={"HYDRA_FULL_ERROR": "1"})
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "hydra.errors.ConfigCompositionException: Could not override 'train.stpes'" in (
        done.stderr
    )


def test_under_dct_torchrun_a_config_error_exits_2(tmp_path):
    process = job(TRAIN, ["train.stpes=5", f"hydra.run.dir={tmp_path}"])
    output = finish(process)
    assert process.returncode == 2, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith("config error: ")]
    # torchrun stops a rank still composing once the other has failed: one line or two.
    assert 1 <= len(lines) <= 2 and len(set(lines)) == 1, output[-3000:]
    assert "Key 'stpes' not in 'TrainConfig'" in lines[0]
    assert "Traceback" not in output


def test_a_full_disk_is_one_line_and_leaves_no_metrics_json(tmp_path):
    """The run directory's disk fills up while the run writes ``metrics.jsonl`` and TensorBoard's
    events each step; the log file, TensorBoard's writer thread and the run end without a
    traceback."""
    with tiny_disk(tmp_path / "disk", size="256k") as disk:
        fill(disk, leave=64 * 1024)
        run_dir = disk / "run"
        args = [*SMALL, "train.steps=200", "train.log_every=1"]
        done = train([*args, f"hydra.run.dir={run_dir}"])
        output = done.stdout + done.stderr
        assert done.returncode == 2, output[-3000:]
        line = one_line(output, "no space left on ")
        # metrics.jsonl or TensorBoard's events, whichever needed a new block first
        assert re.search(
            rf"no space left on {run_dir}(/tensorboard)?: free space or choose another "
            r"hydra.run.dir / train.checkpoint_dir$",
            line,
        ), line
        assert not (run_dir / "metrics.json").exists()
        assert not list(run_dir.glob("*.partial"))
        lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
        assert lines and all(line.endswith("}\n") for line in lines), "a line written in part"


def test_a_worker_killed_by_sigkill_ends_dct_torchrun_with_137(tmp_path):
    """Rank 0 dies as the out-of-memory killer kills: no word of its own, exit code 137."""
    args = [*SMALL, f"hydra.run.dir={tmp_path}"]
    process = job(FAULTY, args, env={"FAULT": "step@3", "FAULT_RANK": "0"})
    output = finish(process)
    assert process.returncode == 137, output[-3000:]  # 128 + SIGKILL
    line = one_line(output, "dct-torchrun: ")
    assert "rank 0 (pid " in line and "was killed by signal 9 (SIGKILL)" in line
    assert "out-of-memory killer" in line and line.endswith("stopping the job with code 137")
    assert not (tmp_path / "metrics.json").exists()
