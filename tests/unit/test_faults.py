"""Early stops: the first non-finite loss is named by its step; a signal becomes ``Stopped``
with the shell's exit code, and a second signal does not interrupt the first one's clean-up."""

from __future__ import annotations

import math
import os
import signal

import pytest

from dct.config import RunConfig
from dct.runtime.faults import Diverged, Stopped, check_losses, stop_on_signals


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_the_first_non_finite_loss_is_named_by_its_step(bad):
    cfg = RunConfig()
    check_losses([0.5, 0.4], 11, cfg)
    with pytest.raises(Diverged, match=f"the training loss is {bad} at step 12. The learning"):
        check_losses([0.5, bad, math.nan], 11, cfg)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_with_the_shells_exit_code_and_later_ones_are_ignored(signum, code):
    before = signal.getsignal(signum)
    with pytest.raises(Stopped) as stopped:
        with stop_on_signals():
            os.kill(os.getpid(), signum)
    assert stopped.value.exit_code == code and stopped.value.at(7).step == 7
    try:
        os.kill(os.getpid(), signum)  # ignored: the clean-up goes on
        assert signal.getsignal(signum) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert before in (signal.default_int_handler, signal.SIG_DFL)


def test_without_a_signal_the_previous_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals():
        assert signal.getsignal(signal.SIGTERM) != before
    assert signal.getsignal(signal.SIGTERM) == before
