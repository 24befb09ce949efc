import errno
import logging
import threading

import pytest

from dct.runtime.no_space import ADVICE, describe_no_space, naming, quiet_when_full
from tests.full_disk import fill, tiny_disk


def test_a_full_disk_names_the_directory_of_the_file_being_written(tmp_path):
    error = naming(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "metrics.jsonl")
    assert error.filename == str(tmp_path / "metrics.jsonl")
    assert describe_no_space(error) == f"no space left on {tmp_path}: {ADVICE}"


def test_a_directory_being_written_is_named_itself_and_a_nameless_error_the_fallback(tmp_path):
    assert describe_no_space(OSError(errno.ENOSPC, "full", str(tmp_path))).startswith(
        f"no space left on {tmp_path}: "
    )
    nameless = OSError(errno.ENOSPC, "No space left on device")
    assert (
        describe_no_space(nameless, tmp_path / "run")
        == f"no space left on {tmp_path}/run: {ADVICE}"
    )
    assert describe_no_space(nameless) == f"no space left on the device: {ADVICE}"


def test_a_full_disk_is_found_behind_the_error_it_caused(tmp_path):
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "f"))
        except OSError as error:
            raise RuntimeError("file write failed") from error
    except RuntimeError as wrapped:
        assert describe_no_space(wrapped) == f"no space left on {tmp_path}: {ADVICE}"


def test_other_errors_are_not_a_full_disk(tmp_path):
    assert describe_no_space(OSError(errno.EACCES, "Permission denied", str(tmp_path))) is None
    assert describe_no_space(ValueError("no")) is None
    named = OSError(errno.EACCES, "Permission denied", "/x")
    assert naming(named, tmp_path).filename == "/x"
    looped = ValueError("no")
    looped.__context__ = looped
    assert describe_no_space(looped) is None


@pytest.fixture
def restored(monkeypatch):
    """``threading.excepthook`` as it was after the test."""
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)


@pytest.mark.parametrize("quiet", [True, False])
def test_a_log_file_on_a_full_disk_drops_its_records_quietly(tmp_path, capsys, restored, quiet):
    """Without ``quiet_when_full`` each record would print a traceback to stderr."""
    with tiny_disk(tmp_path / "disk") as disk:
        handler = logging.FileHandler(disk / "train.log")
        logging.getLogger().addHandler(handler)
        try:
            fill(disk)
            if quiet:
                quiet_when_full()
            logging.getLogger("test_no_space").error("x" * 8192)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    assert ("Logging error" in capsys.readouterr().err) is not quiet


@pytest.mark.parametrize(
    "error, reported",
    [(OSError(errno.ENOSPC, "No space left on device"), False), (ValueError("a bug"), True)],
)
def test_a_thread_that_dies_of_a_full_disk_ends_quietly(restored, error, reported):
    """Any other error still reaches the hook that was there before (it prints a traceback)."""
    seen = []
    threading.excepthook = lambda args: seen.append(args.exc_value)

    def fail():
        raise error

    quiet_when_full()
    thread = threading.Thread(target=fail)
    thread.start()
    thread.join()
    assert seen == ([error] if reported else [])
