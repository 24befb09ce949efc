"""``output.log_level``: which of dct's and other libraries' records reach a handler."""

from __future__ import annotations

import logging

import pytest

from dct.runtime import log_levels


@pytest.fixture
def reached():
    """The (logger, level) of every record that reaches the root logger's handlers; the
    loggers' levels are restored afterwards."""
    root, own = logging.getLogger(), logging.getLogger("dct")
    saved = root.level, own.level
    seen: list[tuple[str, str]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.name, record.levelname))

    handler = Collect()
    root.addHandler(handler)
    yield seen
    root.removeHandler(handler)
    root.setLevel(saved[0])
    own.setLevel(saved[1])


def log_each() -> None:
    """What a run logs: dct's lines and FBGEMM's (its module loggers and the root logger)."""
    for name in ("dct.train.run", "fbgemm_gpu.tbe", "root"):
        logger = logging.getLogger() if name == "root" else logging.getLogger(name)
        for level in (logging.DEBUG, logging.INFO, logging.WARNING):
            logger.log(level, "line")


@pytest.mark.parametrize(
    "level, lead, expected",
    [
        (
            "info",
            True,
            [
                ("dct.train.run", "INFO"),
                ("dct.train.run", "WARNING"),
                ("fbgemm_gpu.tbe", "WARNING"),
                ("root", "WARNING"),
            ],
        ),
        (
            "info",
            False,
            [("dct.train.run", "WARNING"), ("fbgemm_gpu.tbe", "WARNING"), ("root", "WARNING")],
        ),
        (
            "warning",
            True,
            [("dct.train.run", "WARNING"), ("fbgemm_gpu.tbe", "WARNING"), ("root", "WARNING")],
        ),
        (
            "debug",
            False,
            [
                (name, level)
                for name in ("dct.train.run", "fbgemm_gpu.tbe", "root")
                for level in ("DEBUG", "INFO", "WARNING")
            ],
        ),
    ],
)
def test_levels(reached, level, lead, expected):
    log_levels.apply(level, lead)
    log_each()
    assert reached == expected


def test_debug_then_info_quiets_again(reached):
    log_levels.apply("debug", True)
    log_levels.apply("info", True)
    log_each()
    assert ("fbgemm_gpu.tbe", "INFO") not in reached and ("dct.train.run", "INFO") in reached
