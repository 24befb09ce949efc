"""Every relative link in README.md and docs/**/*.md points at a file that exists, and every
``#anchor`` into a markdown file at one of its headings; no page names a path outside the
repository, which a user's machine would not have; docs/data.md's measured numbers have their
command beside them. Stored run outputs (docs/**/runs/) are what the runs wrote and are not
checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _pages() -> list[Path]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in pages if "runs" not in p.relative_to(ROOT).parts]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text()))}


def _links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


# The development checkout's own places, which no user's machine has.
PATH_END = r"[^\s`'\")\]>,;]*"
OUTSIDE = re.compile(
    rf"(?<![\w.-])/(?:work|home|Users)/{PATH_END}|[\w./-]*\bshared/(?:data|peers)\b{PATH_END}"
)
PARENT = re.compile(rf"(?<![\w./-])\.\./{PATH_END}")


def _outside(text: str, folder: Path) -> list[str]:
    """Paths in a page's ``text`` that leave the repository: a link target resolved from the
    page's ``folder``; elsewhere (commands, run from the repository root) a ``../`` path
    resolved from the root; and any of the development checkout's own places (``OUTSIDE``)."""
    found = []
    for target in LINK.findall(text):
        path = target.partition("#")[0]
        if path and not (folder / path).resolve().is_relative_to(ROOT):
            found.append(target)
    for path in PARENT.findall(LINK.sub("", text)):
        if not (ROOT / path).resolve().is_relative_to(ROOT):
            found.append(path)
    found += OUTSIDE.findall(text)
    return list(dict.fromkeys(found))


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_path_leaves_the_repository(page: Path) -> None:
    found = _outside(page.read_text(), page.parent)
    assert not found, (
        f"{page.relative_to(ROOT)} names paths outside the repository, which a user's machine "
        f"does not have: {found}; give the command that makes the file instead, or a path in "
        "the repository"
    )


@pytest.mark.parametrize(
    "text, leaves",
    [
        ("[up](../../../x.md)", True),
        ("[in](../design.md)", False),
        ("`dct-preprocess-criteo data/k ../shared/data/head.tsv`", True),
        ("`python benchmarks/x.py --peer-python /work/peer-venv/bin/python`", True),
        ("resumed from /home/me/ckpt", True),
        ("`shared/data/criteo.tsv`", True),
        ("`train.resume` (`.../checkpoints/step_00000400`)", False),
        ("`data/criteo_sample.tsv`, `docs/a2a_compressed/../design.md`", False),
    ],
)
def test_paths_outside_the_repository_are_found(text: str, leaves: bool) -> None:
    found = _outside(text, ROOT / "docs" / "fidelity")
    assert bool(found) == leaves, found


MEASURED = re.compile(
    # a number with a unit, not the result of arithmetic written out ("... = 1.7 GB")
    r"(?<![\d.,])(?<!= )\d[\d,.]*\s*k?\s*(?:MB|GB|rows/s|samples/s|ms|seconds?|minutes?)\b"
    r"|\b(?:AUC|log-loss)\s+\d|\|\s*eval AUC\s*\|"
)
COMMAND = re.compile(r"```bash\n|`(?:python|dct-|torchrun|sudo python)[^`]*`")


def _sections(text: str) -> list[str]:
    """The text under each heading (fenced blocks included), up to the next heading."""
    starts = [m.start() for m in re.finditer(r"^#{1,6} ", FENCE.sub(_blank, text), re.M)]
    return [text[a:b] for a, b in zip([0, *starts], [*starts, len(text)])]


def _blank(match: re.Match) -> str:
    """A fenced block with its lines kept but emptied, so offsets stay and no # heads a line."""
    return re.sub(r"[^\n]", " ", match.group())


def _unsourced(text: str) -> list[str]:
    """The measured numbers of each section that holds no command to measure them with."""
    return [
        MEASURED.search(section).group()
        for section in _sections(text)
        if MEASURED.search(section) and not COMMAND.search(section)
    ]


def test_measured_numbers_of_docs_data_md_have_their_command_beside_them() -> None:
    unsourced = _unsourced((ROOT / "docs" / "data.md").read_text())
    assert not unsourced, (
        f"docs/data.md states {unsourced} in a section with no command that measures it; put "
        "the command next to the number"
    )


def test_a_number_without_its_command_is_found() -> None:
    page = "## Speed\n\nIt reads 170k rows/s.\n\n## Sample\n\n```bash\npython x.py\n```\nAUC 0.68\n"
    assert _unsourced(page) == ["170k rows/s"]
    assert _unsourced(page.replace("It reads", "`python bench.py` reads")) == []
