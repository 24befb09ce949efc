"""Runtime faults of a real ``dct-torchrun`` job end in one line, the right exit code, no
traceback, and no ``metrics.json`` that would pass for a finished run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_launch import REPO, SMALL, TRAIN
from tests.time_limit import scaled

FAULTY = str(REPO / "tests" / "integration" / "faulty_train.py")
LONG = [
    "train.steps=100000",
    "train.batch_size=128",
    "train.log_every=2",
    "train.eval_every=100000",
    "data.eval_size=256",
    "output.progress_bar=false",
    "output.tensorboard=false",
]


def job(
    script: str,
    args: list[str],
    env: dict[str, str] | None = None,
    launcher: str = "dct.torchrun",
) -> subprocess.Popen:
    """``dct-torchrun`` (or ``launcher``) on 2 ranks, in its own process group (as a terminal's
    foreground job)."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    environ.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "-m", launcher, "--standalone", "--nproc_per_node=2"]
    return subprocess.Popen(
        [*command, script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environ,
        cwd=REPO,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, idle_limit_s: float = 120) -> str:
    try:
        return process.communicate(timeout=scaled(idle_limit_s))[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def wait_for_training(run_dir: Path, idle_limit_s: float = 90) -> None:
    """Until rank 0 has logged a training interval."""
    deadline = time.monotonic() + scaled(idle_limit_s)
    log = run_dir / "metrics.jsonl"
    while not (log.exists() and log.stat().st_size > 0):
        assert time.monotonic() < deadline, "the job did not start training"
        time.sleep(0.2)


def one_line(output: str, marker: str) -> str:
    """The single line carrying ``marker``; the output holds no traceback at all."""
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if marker in line]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


def test_a_diverging_loss_stops_the_job_naming_the_step_and_the_learning_rate(tmp_path):
    args = [*SMALL, "optim=sgd", "train.lr=100", f"hydra.run.dir={tmp_path}"]
    process = job(TRAIN, args)
    output = finish(process)
    assert process.returncode == 1, output[-3000:]
    line = one_line(output, "diverged: ")
    assert "the training loss is nan at step " in line and "train.lr=100" in line
    assert not (tmp_path / "metrics.json").exists()


def test_a_second_job_is_refused_its_running_directory_and_ctrl_c_ends_the_first(tmp_path):
    first = job(TRAIN, [*LONG, f"hydra.run.dir={tmp_path}"])
    wait_for_training(tmp_path)
    second = job(TRAIN, [*LONG, f"hydra.run.dir={tmp_path}"])
    output = finish(second)
    assert second.returncode == 2, output[-3000:]
    line = one_line(output, "run directory error: ")
    assert f"hydra.run.dir={tmp_path} is in use by a running job" in line
    assert first.poll() is None, "the first job must go on"

    os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    output = finish(first)
    assert first.returncode == 130, output[-3000:]
    line = one_line(output, "interrupted at step ")
    assert "(signal 2)" in line
    assert not (tmp_path / "metrics.json").exists()


def test_sigterm_to_the_launcher_ends_the_job_with_143(tmp_path):
    process = job(TRAIN, [*LONG, f"hydra.run.dir={tmp_path}"])
    wait_for_training(tmp_path)
    process.send_signal(signal.SIGTERM)  # what a scheduler's stop does
    output = finish(process)
    assert process.returncode == 143, output[-3000:]
    assert "(signal 15)" in one_line(output, "interrupted at step ")
    assert not (tmp_path / "metrics.json").exists()


def test_under_plain_torchrun_ctrl_c_is_one_line_of_ours(tmp_path):
    """torchrun reports the signal in a traceback of its own and exits 1; none of ours."""
    process = job(TRAIN, [*LONG, f"hydra.run.dir={tmp_path}"], launcher="torch.distributed.run")
    wait_for_training(tmp_path)
    os.killpg(process.pid, signal.SIGINT)
    output = finish(process)
    assert process.returncode == 1, output[-3000:]
    assert len([line for line in output.splitlines() if "interrupted at step " in line]) == 1
    assert "KeyboardInterrupt" not in output
    assert not [line for line in output.splitlines() if 'File "' + str(REPO) in line], output
    assert not (tmp_path / "metrics.json").exists()


def test_a_hung_peer_is_named_after_the_timeout(tmp_path):
    args = [*SMALL, "parallel.timeout_s=3", f"hydra.run.dir={tmp_path}"]
    process = job(FAULTY, args, env={"FAULT": "hang@3"})
    output = finish(process)
    assert process.returncode == 1, output[-3000:]
    line = one_line(output, "peer error: ")
    assert "a collective in backward (the gradient all-reduce) failed on this rank" in line
    assert "Timed out" in line and "parallel.timeout_s=3 s" in line
    assert not (tmp_path / "metrics.json").exists()


def test_an_unusable_run_directory_is_one_line_before_anything_loads(tmp_path):
    (tmp_path / "parent").write_text("")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run_dir = tmp_path / "parent" / "run"
    done = subprocess.run(
        [sys.executable, TRAIN, *SMALL, f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=scaled(60),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    line = one_line(output, "run directory error: ")
    assert f"hydra.run.dir={run_dir} cannot be created: {tmp_path}/parent is a file" in line


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory on a read-only bind mount: unwritable for root too."""
    ro = tmp_path / "ro"
    ro.mkdir()
    mount = ["mount", "--bind", str(ro), str(ro)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("needs root and mount to make a directory read-only for root")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.parametrize("inside", ["", "run"], ids=["is-read-only", "in-read-only"])
def test_a_read_only_run_directory_is_one_line(read_only_dir, inside):
    run_dir = read_only_dir / inside if inside else read_only_dir
    done = subprocess.run(
        [sys.executable, TRAIN, *SMALL, f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=REPO,
        timeout=scaled(60),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    line = one_line(output, "run directory error: ")
    assert f"hydra.run.dir={run_dir}" in line and "choose a writable hydra.run.dir" in line
