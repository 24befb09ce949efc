"""The simulated cluster (``launch/sim_cluster.sh``): a real 2-host job, its wire bytes against the
byte meter, and its clean-up on success, on timeout and when refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_launch import REPO, SMALL

SCRIPT = str(REPO / "launch" / "sim_cluster.sh")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None,
    reason="the simulated cluster needs root and iproute2 (ip, tc) to create network namespaces",
)


def cluster_command(options: list[str], train: list[str]) -> list[str]:
    return ["bash", SCRIPT, *options, "--", "launch/train.py", *train]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cluster(
    options: list[str], train: list[str], timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        cluster_command(options, train),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=REPO,
    )


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}


@needs_root
def test_two_hosts_train_and_the_wire_carries_what_the_meter_counted(tmp_path):
    before = namespaces()
    done = cluster(
        ["--hosts", "2", "--rate", "1gbit", "--timeout", "150", "--logs", str(tmp_path / "hosts")],
        [*SMALL, "parallel.mp_size=2", f"hydra.run.dir={tmp_path}"],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 12
    metered = sum(metrics[f"{c}_bytes_sent"] for c in ("dp", "mp", "other"))
    wire = json.loads((tmp_path / "hosts" / "wire_bytes.json").read_text())
    for host in ("host0", "host1"):
        # Headers, rendezvous and the store ride on top of the payloads the meter counted.
        assert metered <= wire[host]["tx_bytes"] <= 1.2 * metered + 2_000_000
    assert namespaces() == before


@needs_root
def test_a_job_past_its_time_bound_is_stopped_and_cleaned_up(tmp_path):
    before = namespaces()
    done = cluster(
        ["--hosts", "2", "--timeout", "4", "--logs", str(tmp_path / "hosts")],
        ["train.steps=100000", "output.progress_bar=false", f"hydra.run.dir={tmp_path}"],
        timeout=60,
    )
    assert done.returncode == 124
    assert "still running after 4s" in done.stderr
    assert namespaces() == before


@needs_root
def test_a_dead_host_ends_the_job_at_once_and_says_which(tmp_path):
    before = namespaces()
    job = subprocess.Popen(
        cluster_command(
            ["--hosts", "2", "--timeout", "120", "--logs", str(tmp_path / "hosts")],
            ["train.steps=100000", "output.progress_bar=false", f"hydra.run.dir={tmp_path}"],
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=ENV,
    )
    host1 = f"d{job.pid}h1"
    log = tmp_path / "hosts" / "host0.log"
    deadline = time.monotonic() + 60
    while "grid:" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and job.poll() is None, "the job never started training"
        time.sleep(0.5)
    pids = subprocess.run(["ip", "netns", "pids", host1], capture_output=True, text=True).stdout
    subprocess.run(["kill", "-KILL", *pids.split()], check=True)
    _, stderr = job.communicate(timeout=30)
    assert job.returncode != 0
    assert "host 1 exited with" in stderr
    assert namespaces() == before


@needs_root
def test_without_root_it_refuses_with_a_reason():
    # The script comes in on stdin: an unprivileged user may not be able to read the checkout.
    done = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "-s",
            "--",
            "--",
            "launch/train.py",
        ],
        input=Path(SCRIPT).read_text(),
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    assert done.returncode == 2, done.stderr
    assert "needs root" in done.stderr


@needs_root
def test_an_unusable_link_rate_is_refused_and_nothing_is_left():
    before = namespaces()
    done = cluster(["--hosts", "2", "--rate", "fast"], ["train.steps=1"], timeout=60)
    assert done.returncode == 2
    assert "--rate fast: tc does not take it" in done.stderr
    assert namespaces() == before
