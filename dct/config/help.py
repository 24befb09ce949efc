"""The text of ``python launch/train.py --help``, drawn from the schemas and ``configs/``.

Every key's line, and every group's, is its field's ``metadata["help"]``
(``dct.config.schema.setting``), so the help cannot drift from the schema; a group's options are
the files under ``configs/<group>/``, and an experiment's description is the first sentence of
its file's opening comment. Defaults shown are the schema's; a group file or an experiment may
set others (``--cfg job`` prints the composed config).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Iterator

from dct.config.schema import DATA_SOURCES, RunConfig

USAGE = """\
Train hybrid-parallel DLRM with Dynamic Communication Thresholding.

  python launch/train.py [GROUP=OPTION ...] [KEY=VALUE ...]
  torchrun --nproc_per_node=N launch/train.py [GROUP=OPTION ...] [KEY=VALUE ...]

--cfg job prints the composed config without training; --hydra-help lists Hydra's own options.
"""


def help_text(configs: Path) -> str:
    """The whole help: usage, the config groups and their options, every key, the experiments.

    Example::

        print(help_text(Path("configs")))
    """
    options = dict(_groups(configs))
    parts = [USAGE, "Keys (KEY=VALUE; the schema's default in brackets), by group:"]
    run = RunConfig()
    for item in fields(run):
        value, about = getattr(run, item.name), item.metadata.get("help", "")
        if not is_dataclass(value):
            parts += _lines([(item.name, value, about)])
            continue
        picks = options.get(item.name)
        parts += [
            "",
            f"  {item.name}: {about}" + (f" ({item.name}={', '.join(picks)})" if picks else ""),
        ]
        if item.name != "data":
            parts += _lines(list(leaf_keys(value, f"{item.name}.")))
            continue
        for name, source in DATA_SOURCES.items():
            parts += [f"   with data={name}: {_first_line(source)}"]
            parts += _lines(list(leaf_keys(source(), "data.")))
    parts += ["", "Experiments (experiment=NAME: a named set of changes to the keys above):"]
    parts += [f"  {name}: {about}" for name, about in _experiments(configs)]
    return "\n".join(parts) + "\n"


def leaf_keys(node: Any, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """``(key, default, help)`` of every setting under the dataclass instance ``node``."""
    for item in fields(node):
        value = getattr(node, item.name)
        if is_dataclass(value):
            yield from leaf_keys(value, f"{prefix}{item.name}.")
        else:
            yield f"{prefix}{item.name}", value, item.metadata.get("help", "")


def _first_line(schema: type) -> str:
    """The first sentence of a schema's docstring, on one line."""
    text = " ".join((schema.__doc__ or "").split()).replace("``", "")
    return text.split(". ")[0].rstrip(".")


def _lines(keys: list[tuple[str, Any, str]]) -> list[str]:
    shown = [(f"{key} [{_show(value)}]", about) for key, value, about in keys]
    width = max(len(left) for left, _ in shown)
    return [f"    {left.ljust(width)}  {about}" for left, about in shown]


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list) and len(value) > 4:
        return f"{len(value)} values"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _groups(configs: Path) -> list[tuple[str, list[str]]]:
    """Each group directory under ``configs/`` and its options."""
    return [
        (group.name, sorted(path.stem for path in group.glob("*.yaml")))
        for group in sorted(configs.iterdir())
        if group.is_dir()
    ]


def _experiments(configs: Path) -> list[tuple[str, str]]:
    """Each experiment and the first sentence of its file's opening comment (``@package``
    lines aside)."""
    found = []
    for path in sorted((configs / "experiment").glob("*.yaml")):
        comments = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            if not line.startswith("# @package"):
                comments.append(line.lstrip("#").strip())
        sentence = " ".join(comments).split(". ", 1)[0]
        found.append((path.stem, sentence if sentence.endswith(".") else sentence + "."))
    return found
