"""Deferred run-directory writes: held until the run is accepted, dropped if it never is."""

from __future__ import annotations

import logging

import pytest

from dct.runtime import acceptance
from dct.runtime.acceptance import DeferredFileHandler

FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


@pytest.fixture(autouse=True)
def nothing_pending():
    acceptance.discard()
    yield
    acceptance.discard()


def record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def handler_of(cls: type[logging.FileHandler], path) -> logging.FileHandler:
    handler = cls(str(path))
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def test_accepted_file_holds_what_a_plain_file_handler_writes(tmp_path):
    records = [
        record("dct.train.run", logging.INFO, "grid: %d ranks", 2),
        record("dct.launch", logging.WARNING, "a warning"),
        record("dct.train.loop", logging.INFO, "plan:\n%s", "two lines"),
    ]
    deferred = handler_of(DeferredFileHandler, tmp_path / "train.log")
    plain = handler_of(logging.FileHandler, tmp_path / "reference.log")
    for each in records[:2]:
        deferred.handle(each)
        plain.handle(each)
    assert not (tmp_path / "train.log").exists()

    acceptance.accept()
    deferred.handle(records[2])
    plain.handle(records[2])
    deferred.close()
    plain.close()
    assert (tmp_path / "train.log").read_bytes() == (tmp_path / "reference.log").read_bytes()


def test_accepted_file_appends_to_an_existing_log(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("earlier run\n")
    handler = handler_of(DeferredFileHandler, path)
    handler.handle(record("dct.launch", logging.INFO, "this run"))
    acceptance.accept()
    handler.close()
    lines = path.read_text().splitlines()
    assert lines[0] == "earlier run" and lines[1].endswith("[dct.launch][INFO] - this run")


def test_an_accepted_run_has_its_log_file_even_with_nothing_logged(tmp_path):
    handler = handler_of(DeferredFileHandler, tmp_path / "train.log")
    acceptance.accept()
    handler.close()
    assert (tmp_path / "train.log").read_bytes() == b""


def test_a_run_never_accepted_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes(b"the finished run's log\n")
    handler = handler_of(DeferredFileHandler, path)
    handler.handle(record("dct.launch", logging.ERROR, "config error: refused"))
    handler.flush()
    handler.close()  # as logging.shutdown does at exit
    acceptance.discard()
    assert path.read_bytes() == b"the finished run's log\n"
    assert not (tmp_path / "fresh.log").exists()
    handler_of(DeferredFileHandler, tmp_path / "fresh.log").close()
    assert not (tmp_path / "fresh.log").exists()


def test_a_held_message_is_the_one_logged_not_its_arguments_later(tmp_path):
    handler = handler_of(DeferredFileHandler, tmp_path / "train.log")
    changing = [1]
    handler.handle(record("dct.launch", logging.INFO, "held %s", changing))
    changing.append(2)
    acceptance.accept()
    handler.close()
    assert (tmp_path / "train.log").read_text().endswith("- held [1]\n")


def test_deferred_actions_run_once_in_order():
    done: list[str] = []
    acceptance.on_acceptance(lambda: done.append("first"))
    acceptance.on_acceptance(lambda: done.append("second"))
    assert done == []
    acceptance.accept()
    acceptance.accept()
    assert done == ["first", "second"]


def test_discarded_actions_never_run():
    done: list[str] = []
    acceptance.on_acceptance(lambda: done.append("refused"))
    acceptance.discard()
    acceptance.accept()
    assert done == []
