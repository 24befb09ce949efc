"""The multi-rank harness tells a hang from a failed assertion, and a busy machine from a hang."""

from __future__ import annotations

import time

import pytest
from torch.multiprocessing import ProcessRaisedException

from tests import time_limit
from tests.distributed.spawn import run_ranks


def hang_on_rank_one() -> int:
    import torch.distributed as dist

    if dist.get_rank() == 1:
        time.sleep(3600)
    return dist.get_rank()


def fail_on_every_rank() -> int:
    import torch.distributed as dist

    # Every rank fails alike: whichever the harness hears of first, it is this assertion, not a
    # peer's broken connection.
    assert dist.get_rank() < 0, f"rank {dist.get_rank()} disagrees"
    return 0


def test_a_hang_ends_in_a_timeout_that_says_so(tmp_path):
    with pytest.raises(TimeoutError, match="2 ranks: timed out after .* nothing asserted"):
        run_ranks(2, hang_on_rank_one, tmp_dir=tmp_path, limit_s=3)


def test_a_failed_assertion_is_reported_as_such(tmp_path):
    with pytest.raises(ProcessRaisedException, match=r"AssertionError: rank \d disagrees"):
        run_ranks(2, fail_on_every_rank, tmp_dir=tmp_path)


def test_a_loaded_machine_stretches_the_budget(monkeypatch):
    loads = iter([8.0, 8.0, 1.0])
    monkeypatch.setattr(time_limit.os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    monkeypatch.setattr(time_limit.os, "cpu_count", lambda: 2)
    clock = iter([0.0, 4.0, 8.0, 9.0])
    monkeypatch.setattr(time_limit.time, "monotonic", lambda: next(clock))
    deadline = time_limit.Deadline(2.5)
    # 4 s at load 4 per core spend 1 s of the idle budget, 4 more 1 s, then 1 idle second 1 s.
    assert not deadline.expired() and not deadline.expired()
    assert deadline.expired()
    monkeypatch.setenv(time_limit.SCALE_ENV, "3")
    monkeypatch.setattr(time_limit.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert time_limit.scaled(10) == 30
