"""Which log lines a run prints: dct's own, and other libraries' warnings.

Libraries log at INFO freely: FBGEMM, installed with the test extras, prints 14 to 24 lines when
imported and when it builds a kernel, one of them a dict of every kernel argument. So the root
logger, which every library's loggers answer to, stays at WARNING, and only dct's loggers (all
under ``dct``) print INFO, on rank 0 only: every rank says the same. ``output.log_level``:

- ``info`` (default): as above;
- ``warning``: dct's warnings and errors only;
- ``debug``: everything, every library's INFO and DEBUG lines included, on every rank.

``configs/train.yaml`` sets the default levels when Hydra configures logging, before anything
is imported; ``apply`` sets the run's own once its config and rank are known, before torch's
libraries load their kernels.
"""

from __future__ import annotations

import logging

OWN = "dct"


def apply(level: str, lead: bool) -> None:
    """Set the root and ``dct`` loggers for ``output.log_level=level`` on a rank (``lead``:
    rank 0). Any other value counts as ``info`` here: the config check refuses it with one
    line, which needs the logging this sets up."""
    if level == "debug":
        logging.getLogger().setLevel(logging.DEBUG)
        logging.getLogger(OWN).setLevel(logging.NOTSET)
        return
    logging.getLogger().setLevel(logging.WARNING)
    own = logging.INFO if level == "info" and lead else logging.WARNING
    logging.getLogger(OWN).setLevel(own)


def quiet_tool(format: str) -> None:
    """A command-line tool's logging (``dct-preprocess-criteo``): dct's INFO lines to stderr in
    ``format``, other libraries' from WARNING up."""
    logging.basicConfig(level=logging.WARNING, format=format)
    logging.getLogger(OWN).setLevel(logging.INFO)
