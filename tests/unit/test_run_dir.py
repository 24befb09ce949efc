"""Claiming a run directory: what cannot be used is refused in one line, and a directory in use
by a running job is refused to a second one, but not to the job's own other workers."""

from __future__ import annotations

import threading

import pytest

from dct.runtime.run_dir import RunDirError, check_writable, claim


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirError, match="file is a file, not a directory"):
        check_writable(tmp_path / "file")
    with pytest.raises(RunDirError, match=f"cannot be created: {tmp_path}/file is a file"):
        check_writable(tmp_path / "file" / "a" / "b")
    check_writable(tmp_path / "new" / "run")


def test_a_second_job_is_refused_while_the_first_holds_the_directory(tmp_path):
    run_dir = tmp_path / "run"
    held = claim(run_dir, "jobA", node_rank=0, local_rank=0)
    with pytest.raises(RunDirError, match=r"is in use by a running job \(job jobA, pid \d+ on "):
        claim(run_dir, "jobB", node_rank=0, local_rank=0)
    # Another node of the same directory on a shared file system has its own lock.
    assert claim(run_dir, "jobA", node_rank=1, local_rank=0) is not None
    held.close()  # the first job ended: its lock went with it
    claim(run_dir, "jobB", node_rank=0, local_rank=0).close()


def test_a_nodes_other_workers_wait_for_their_own_job_to_hold_the_lock(tmp_path):
    run_dir = tmp_path / "run"
    claim(run_dir, "old", node_rank=0, local_rank=0).close()  # a finished job's lock file
    with pytest.raises(RunDirError, match="was not locked for job new within 0.2 s"):
        claim(run_dir, "new", node_rank=0, local_rank=1, wait_s=0.2)
    waiter = threading.Thread(target=claim, args=(run_dir, "new", 0, 1, 30))
    waiter.start()
    lock = claim(run_dir, "new", node_rank=0, local_rank=0)
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    lock.close()
