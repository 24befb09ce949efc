"""The intra-op thread count: the setting, else OMP_NUM_THREADS, else one."""

from __future__ import annotations

import pytest

from dct.config import ConfigError
from dct.runtime.threads import choose_threads


def test_the_setting_wins_then_the_environment_then_one():
    assert choose_threads(3, {"OMP_NUM_THREADS": "1"}) == (3, "parallel.threads=3")
    assert choose_threads(None, {"OMP_NUM_THREADS": "2"}) == (2, "OMP_NUM_THREADS=2")
    threads, reason = choose_threads(None, {})
    assert threads == 1 and "the default" in reason


@pytest.mark.parametrize(
    "setting, environ, message",
    [
        (0, {}, "parallel.threads=0 must be at least 1, or null"),
        (None, {"OMP_NUM_THREADS": "many"}, "OMP_NUM_THREADS='many' is not a thread count"),
    ],
)
def test_impossible_counts_are_config_errors(setting, environ, message):
    with pytest.raises(ConfigError, match=message):
        choose_threads(setting, environ)
