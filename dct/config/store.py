"""The schemas' entries in Hydra's ConfigStore, made by ``launch/`` before Hydra composes.

The run's schema leaves ``data`` unset (typed by the ``DataConfig`` base): each ``configs/data``
file names its source's schema (``synthetic_schema``, ``criteo_schema``) in its defaults list,
so the composed ``data`` holds that source's keys only, and a key of another source fails in
composition; ``unknown_data_key`` turns that failure into one line naming the key and the
source. Hydra's ``--help`` prints ``dct.config.help``'s text (``hydra/help: dct``). This is the
one module of ``dct.config`` that needs OmegaConf, imported by ``launch/`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf

from dct.config.checks import not_a_key
from dct.config.help import help_text
from dct.config.schema import DATA_SOURCES, RunConfig


def register_schemas(store: Any, configs: Path) -> None:
    """Put the run schema, each data source's schema and the help text into ``store`` (Hydra's
    ``ConfigStore.instance()``); ``configs`` is the config directory the help describes.

    Example::

        register_schemas(ConfigStore.instance(), Path("configs"))
    """
    run = OmegaConf.structured(RunConfig)
    run.data = MISSING
    store.store(name="run_schema", node=run)
    for name, schema in DATA_SOURCES.items():
        store.store(group="data", name=f"{name}_schema", node=schema)
    # Hydra fills the template in with string.Template: a literal $ is written $$.
    template = help_text(configs).replace("$", "$$")
    store.store(
        group="hydra/help",
        name="dct",
        node={"app_name": "dct", "header": "", "footer": "", "template": template},
    )


def unknown_data_key(error: BaseException) -> Optional[str]:
    """One line for a composition ``error`` caused by a ``data.*`` key that the chosen source
    does not have (``data=criteo data.num_dense=1``), naming the key, the source and its keys;
    ``None`` for any other error."""
    cause: Optional[BaseException] = error
    while cause is not None:
        full_key = getattr(cause, "full_key", None)
        source = _source_of(getattr(cause, "object_type", None))
        if source is not None and isinstance(full_key, str) and full_key.startswith("data."):
            return not_a_key(full_key, DATA_SOURCES[source]())
        cause = cause.__cause__ or cause.__context__
    return None


def _source_of(object_type: Any) -> Optional[str]:
    return next((name for name, schema in DATA_SOURCES.items() if schema is object_type), None)
