"""Hydra's own errors as one line and exit code 2, like every other user mistake.

Hydra reports a config it cannot compose (an unknown key, an override it cannot parse, a group
option that does not exist, a value of the wrong type) in several lines and exits with code 1,
the code of a failure. ``exit_on_config_errors`` runs a ``@hydra.main`` function so that these
end instead in ``config error: <Hydra's message, on one line>`` and exit code 2, and a full disk
while Hydra writes its files in ``no space left on <dir>: ...`` (``dct.runtime.no_space``).
``HYDRA_FULL_ERROR=1`` keeps Hydra's traceback, as for our own errors.

Hydra has no setting for its error report: every error on its way out passes through
``hydra._internal.utils.run_and_report``, which is replaced for the duration of the call (the
version is pinned in ``constraints.txt``). This module imports no torch, so that a mistake is
reported before torch loads.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from hydra._internal import utils as hydra_utils
from hydra.errors import HydraException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from dct.config.store import unknown_data_key
from dct.runtime.no_space import describe_no_space

# Lines of Hydra's and OmegaConf's messages that locate rather than explain; left out.
_DETAILS = ("full_key:", "reference_type=", "object_type=", "Config search path:", "provider=")


def exit_on_config_errors(main: Callable[[], object]) -> None:
    """Call ``main`` (a function decorated with ``@hydra.main``), Hydra's errors as above.

    Example::

        if __name__ == "__main__":
            exit_on_config_errors(main)
    """
    report = hydra_utils.run_and_report

    def run_and_report(func: Callable[[], Any]) -> Any:
        return report(lambda: _exit_on_mistakes(func))

    hydra_utils.run_and_report = run_and_report
    try:
        main()
    finally:
        hydra_utils.run_and_report = report


def _exit_on_mistakes(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except (HydraException, OmegaConfBaseException, OSError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if isinstance(error, (HydraException, OmegaConfBaseException)):
            print(f"config error: {unknown_data_key(error) or one_line(error)}", file=sys.stderr)
            sys.exit(2)
        no_space = describe_no_space(error)
        if no_space is None:
            raise
        print(no_space, file=sys.stderr)
        sys.exit(2)


def one_line(error: BaseException) -> str:
    """Hydra's message for ``error`` (and OmegaConf's, for the error it wraps) on one line.

    For example, an unknown group option gives ``In 'train': Could not find 'model/nope'.
    Available options in 'model': dlrm, dlrm_paper``; the config search path is left out.
    """
    phrases = _phrases(str(error))
    if isinstance(error, OverrideParseException):
        phrases[:1] = [f"{error.override}: {phrases[0]}" if phrases else error.override]
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException) and phrases:
        explained = _phrases(str(cause))
        if explained:
            phrases[0] = f"{phrases[0].rstrip('.')}: {explained[0]}"
            phrases[1:1] = explained[1:]
    return " ".join(p if p.endswith((".", ":", "?", "!")) else p + "." for p in phrases)


def _phrases(text: str) -> list[str]:
    """The message's lines, stripped, without locating details; a tab-indented list (Hydra's
    available options) joined to the line that introduces it."""
    phrases: list[str] = []
    listing = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(_DETAILS):
            listing = False
        elif raw.startswith("\t") and phrases and (listing or phrases[-1].endswith(":")):
            phrases[-1] += ("," if listing else "") + " " + line
            listing = True
        else:
            phrases.append(line)
            listing = False
    return phrases
